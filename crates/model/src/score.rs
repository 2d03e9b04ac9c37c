//! Scoring text: the causal-LM negative log-likelihood exactly as transformers' `labels=input_ids` loss (each
//! token predicted from its prefix; a text of n tokens has n−1 predicted positions).

use serde::Serialize;

use crate::error::Result;
use crate::models::Llama;
use crate::tokenizer::TextTokenizer;

/// The score of one text.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TextScore {
    /// Predicted positions (tokens − 1).
    pub tokens: usize,
    /// Sum of the negative log-likelihoods.
    pub nll_sum: f64,
    /// `nll_sum / tokens` (None when nothing is predicted).
    pub mean_nll: Option<f64>,
}

/// Totals over many texts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScoreSummary {
    pub tokens: usize,
    pub mean_nll: Option<f64>,
    pub perplexity: Option<f64>,
}

/// Scores one text (tokenized with the tokenizer's special tokens, as transformers does by default).
pub fn score_text(model: &Llama, tokenizer: &TextTokenizer, text: &str) -> Result<TextScore> {
    let ids = tokenizer.encode(text, true)?;
    let log_probs = model.for_inference().token_log_probs(&ids)?;
    let nll_sum: f64 = log_probs.iter().map(|&lp| -(lp as f64)).sum();
    let tokens = log_probs.len();
    Ok(TextScore {
        tokens,
        nll_sum,
        mean_nll: (tokens > 0).then(|| nll_sum / tokens as f64),
    })
}

/// Token-weighted totals of `scores`.
pub fn summarize(scores: &[TextScore]) -> ScoreSummary {
    let tokens: usize = scores.iter().map(|s| s.tokens).sum();
    let nll: f64 = scores.iter().map(|s| s.nll_sum).sum();
    let mean_nll = (tokens > 0).then(|| nll / tokens as f64);
    ScoreSummary {
        tokens,
        mean_nll,
        perplexity: mean_nll.map(f64::exp),
    }
}
