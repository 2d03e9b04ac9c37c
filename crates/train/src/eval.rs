//! Evaluation on the validation samples: loss and perplexity over all labelled tokens, and — when asked —
//! answers generated from each sample's prompt with the prediction settings, scored by BLEU (sacrebleu's
//! sentence BLEU) or per-sample perplexity.

use std::path::Path;

use ferrotune_data::batch::{collate, PadOptions};
use ferrotune_data::{Sample, TextTokenizer};
use ferrotune_model::{generate, ForwardOptions, GenerationConfig, Llama};

use crate::bleu::sentence_bleu;
use crate::error::{Error, Result};
use crate::loss::{batch_loss, LossKind};

/// The metric that ranks checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// exp(validation loss); lower is better.
    Perplexity,
    /// Mean sentence BLEU of generated answers; higher is better.
    Bleu,
    /// Mean score an LLM judge gives the generated answers (see [`crate::judge`]); higher is better.
    Gpt,
    /// The head metrics of classification and regression (see [`crate::scores`]).
    Auc,
    Accuracy,
    LogLoss,
    Mse,
    Mae,
}

impl Metric {
    /// The evaluation that computes the config's metric.
    pub fn from_config(metric: ferrotune_config::Metric) -> Option<Metric> {
        use ferrotune_config::Metric as M;
        match metric {
            M::Perplexity => Some(Metric::Perplexity),
            M::Bleu => Some(Metric::Bleu),
            M::Auc => Some(Metric::Auc),
            M::Accuracy => Some(Metric::Accuracy),
            M::LogLoss => Some(Metric::LogLoss),
            M::Mse => Some(Metric::Mse),
            M::Mae => Some(Metric::Mae),
            M::Gpt => Some(Metric::Gpt),
        }
    }

    /// The config's name of the metric.
    pub fn config(self) -> ferrotune_config::Metric {
        match self {
            Metric::Perplexity => ferrotune_config::Metric::Perplexity,
            Metric::Bleu => ferrotune_config::Metric::Bleu,
            Metric::Gpt => ferrotune_config::Metric::Gpt,
            Metric::Auc => ferrotune_config::Metric::Auc,
            Metric::Accuracy => ferrotune_config::Metric::Accuracy,
            Metric::LogLoss => ferrotune_config::Metric::LogLoss,
            Metric::Mse => ferrotune_config::Metric::Mse,
            Metric::Mae => ferrotune_config::Metric::Mae,
        }
    }

    pub fn name(self) -> &'static str {
        self.config().as_str()
    }

    /// Whether every evaluation generates answers to score (BLEU and the judge); the others generate them only
    /// for the final predictions file.
    pub fn needs_answers(self) -> bool {
        matches!(self, Metric::Bleu | Metric::Gpt)
    }

    /// Whether `a` is better than `b` (see [`ferrotune_config::Metric::higher_is_better`]).
    pub fn better(self, a: f64, b: f64) -> bool {
        self.config().better(a, b)
    }
}

/// One validation sample's generated answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub prompt: String,
    pub target: String,
    pub prediction: String,
    /// BLEU, the judge's score, or the sample's perplexity (NaN for the head metrics, which are not per sample,
    /// and for an answer the judge could not score).
    pub metric: f64,
    /// The GPT judge's explanation, or why it gave no score.
    pub explanation: Option<String>,
    /// Classification and regression: the head's probabilities or values (empty for answers).
    pub outputs: Vec<f64>,
}

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub perplexity: f64,
    pub metric: f64,
    pub predictions: Vec<Prediction>,
    /// Preference tuning: the validation pairs' rewards.
    pub rewards: Option<ferrotune_home::Rewards>,
    /// A line for the run's log (e.g. answers the judge could not score).
    pub note: Option<String>,
}

/// How an evaluation scores answers: the metric, the generation settings when answers are generated, and the
/// judge of the GPT metric.
#[derive(Clone, Copy)]
pub struct Scoring<'a> {
    pub metric: Metric,
    pub generation: Option<&'a GenerationConfig>,
    pub judge: Option<&'a crate::judge::Judge>,
}

/// Evaluates `model` on `samples`. With `scoring.generation`, every sample's answer is generated and scored.
pub fn evaluate(
    model: &Llama,
    tokenizer: &TextTokenizer,
    samples: &[Sample],
    padding: &PadOptions,
    batch_size: usize,
    scoring: Scoring,
) -> Result<Evaluation> {
    let Scoring {
        metric,
        generation,
        judge,
    } = scoring;
    if samples.is_empty() {
        return Err(Error::Setting("the validation set is empty\nhelp: raise `dataset.validation_size` or give a `dataset.validation_dataframe`".into()));
    }
    // Evaluation needs no gradients: without the autograd graph its peak is one layer's activations.
    let model = &model.for_inference();
    let mut nll = 0.0;
    let mut tokens = 0usize;
    let mut per_sample = vec![(0.0, 0usize); samples.len()];
    let indices: Vec<usize> = (0..samples.len())
        .filter(|&i| samples[i].label_count() > 0)
        .collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let batch = collate(samples, chunk, padding);
        let out = batch_loss(
            model,
            &batch.input_ids,
            &batch.labels,
            LossKind::TokenAveraged,
            &ForwardOptions::default(),
        )?;
        nll += out.nll_sum;
        tokens += out.tokens;
        for (&i, row) in chunk.iter().zip(out.rows) {
            per_sample[i] = row;
        }
    }
    let loss = if tokens > 0 {
        nll / tokens as f64
    } else {
        f64::NAN
    };
    let perplexity = loss.exp();
    let mut predictions = Vec::new();
    if let Some(cfg) = generation {
        for (i, s) in samples.iter().enumerate() {
            let prompt = &s.input_ids[..s.prompt_len.max(1).min(s.input_ids.len())];
            let out = generate(model, tokenizer, prompt, cfg, &mut |_| {})?;
            let prediction = out.text.trim().to_string();
            let value = match metric {
                Metric::Bleu => sentence_bleu(&prediction, &s.answer_text),
                Metric::Perplexity => {
                    let (n, k) = per_sample[i];
                    if k > 0 {
                        (n / k as f64).exp()
                    } else {
                        f64::NAN
                    }
                }
                // The head metrics are not metrics of answers.
                _ => f64::NAN,
            };
            predictions.push(Prediction {
                prompt: s.prompt_text.clone(),
                target: s.answer_text.clone(),
                prediction,
                metric: value,
                explanation: None,
                outputs: Vec::new(),
            });
        }
    }
    let mut judge_note = None;
    if let (Metric::Gpt, Some(judge), false) = (metric, judge, predictions.is_empty()) {
        let answers: Vec<crate::judge::Answer> = predictions
            .iter()
            .enumerate()
            .map(|(i, p)| crate::judge::Answer {
                prompt: &p.prompt,
                reference: &p.target,
                prediction: &p.prediction,
                category: judge.category(i),
            })
            .collect();
        let judged = judge.judge_all(&answers)?;
        judge_note = judged.failure_note();
        for (p, verdict) in predictions.iter_mut().zip(judged.verdicts) {
            let (score, explanation) = match verdict {
                crate::judge::Verdict::Scored { score, explanation } => (score, explanation),
                crate::judge::Verdict::Failed(why) => (f64::NAN, format!("not scored: {why}")),
            };
            p.metric = score;
            p.explanation = Some(explanation);
        }
    }
    let metric_value = match metric {
        Metric::Perplexity => perplexity,
        Metric::Gpt if !predictions.is_empty() => {
            let scored: Vec<f64> = predictions
                .iter()
                .map(|p| p.metric)
                .filter(|m| m.is_finite())
                .collect();
            scored.iter().sum::<f64>() / scored.len().max(1) as f64
        }
        Metric::Bleu if !predictions.is_empty() => {
            predictions.iter().map(|p| p.metric).sum::<f64>() / predictions.len() as f64
        }
        _ => f64::NAN,
    };
    Ok(Evaluation {
        loss,
        perplexity,
        metric: metric_value,
        predictions,
        rewards: None,
        note: judge_note,
    })
}

/// Writes `validation_predictions.csv` (prompt, target, prediction, metric; with the GPT judge also its
/// explanation) with RFC 4180 quoting.
pub fn write_predictions(path: &Path, metric: Metric, predictions: &[Prediction]) -> Result<()> {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let explained = predictions.iter().any(|p| p.explanation.is_some());
    let mut out = format!(
        "prompt,target,prediction,{}{}\n",
        metric.name(),
        if explained { ",explanation" } else { "" }
    );
    for p in predictions {
        out.push_str(&format!(
            "{},{},{},{}",
            quote(&p.prompt),
            quote(&p.target),
            quote(&p.prediction),
            p.metric
        ));
        if explained {
            out.push_str(&format!(
                ",{}",
                quote(p.explanation.as_deref().unwrap_or(""))
            ));
        }
        out.push('\n');
    }
    ferrotune_home::atomic::write(path, out.as_bytes()).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
