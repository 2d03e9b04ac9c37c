//! Text generation with a KV cache: greedy, sampling (temperature, top-k, top-p, repetition penalty, seedable)
//! and beam search; minimum/maximum new tokens, stop token ids and stop strings; streaming of text deltas.

mod beam;
pub mod sampling;
mod state;
mod stream;

use std::time::Duration;

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::models::Llama;
use crate::tokenizer::TextTokenizer;
pub use state::DecodeState;
pub use stream::TextStream;

/// Settings of one generation call.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Upper bound on generated tokens.
    pub max_new_tokens: usize,
    /// Stop ids and stop strings are ignored before this many tokens.
    pub min_new_tokens: usize,
    /// 0 is greedy; > 0 samples.
    pub temperature: f64,
    /// Keep only the k most likely tokens when sampling (0 or None: all).
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches p when sampling.
    pub top_p: Option<f64>,
    /// > 1 discourages tokens already present (CTRL's rule, as transformers).
    pub repetition_penalty: f64,
    /// Keep only tokens at least this share as likely as the most likely one when sampling (`None`: off).
    pub min_p: Option<f64>,
    /// Subtracted from the logit of every token the completion already holds (OpenAI's `presence_penalty`).
    pub presence_penalty: f64,
    /// Subtracted per occurrence in the completion so far (OpenAI's `frequency_penalty`).
    pub frequency_penalty: f64,
    /// > 1 runs beam search (deterministic; temperature must be 0).
    pub num_beams: usize,
    /// Beam scores are divided by `generated_len ^ length_penalty`.
    pub length_penalty: f64,
    /// Seed of the sampler.
    pub seed: u64,
    /// Token ids that end generation (typically the model's EOS ids).
    pub stop_token_ids: Vec<u32>,
    /// Texts that end generation; the completion is cut before them.
    pub stop_strings: Vec<String>,
    /// Stop after this much time (H2O LLM Studio's `prediction.max_time`; transformers' `max_time`), with
    /// [`FinishReason::Length`]; `None`: no limit.
    pub max_time: Option<std::time::Duration>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            min_new_tokens: 0,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            min_p: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            num_beams: 1,
            length_penalty: 1.0,
            seed: 0,
            stop_token_ids: Vec::new(),
            stop_strings: Vec::new(),
            max_time: None,
        }
    }
}

impl GenerationConfig {
    /// Checks ranges; returns a message naming the bad setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidGeneration(m.to_string()));
        if self.max_new_tokens == 0 {
            return bad("`max_new_tokens` must be at least 1");
        }
        if self.min_new_tokens > self.max_new_tokens {
            return bad("`min_new_tokens` must not exceed `max_new_tokens`");
        }
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("`temperature` must be ≥ 0 (0 is greedy)");
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return bad("`top_p` must be in (0, 1]");
            }
        }
        if let Some(p) = self.min_p {
            if !(0.0..=1.0).contains(&p) {
                return bad("`min_p` must be in [0, 1]");
            }
        }
        for (name, v) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !(-2.0..=2.0).contains(&v) {
                return bad(&format!("`{name}` must be in [-2, 2]"));
            }
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("`repetition_penalty` must be > 0 (1 disables it)");
        }
        if self.num_beams == 0 {
            return bad("`num_beams` must be at least 1");
        }
        if self.num_beams > 1 && self.temperature > 0.0 {
            return bad("beam search is deterministic: use `temperature` 0 with `num_beams` > 1");
        }
        Ok(())
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token id was produced.
    StopToken,
    /// A stop string appeared.
    StopString,
    /// `max_new_tokens` reached.
    Length,
    /// The model's context length (`max_position_embeddings`) reached before `max_new_tokens`: the request was
    /// capped there.
    Context,
    /// The caller asked to stop (e.g. a chat client went away).
    Cancelled,
}

/// The result of [`generate`].
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated ids (without the prompt; without the stop token).
    pub token_ids: Vec<u32>,
    /// The completion text (special tokens skipped, cut before a stop string).
    pub text: String,
    pub finish_reason: FinishReason,
    /// Time to process the prompt.
    pub prefill_time: Duration,
    /// Time spent producing the new tokens after the prompt.
    pub decode_time: Duration,
}

impl Generation {
    /// New tokens per second of the decode phase (first token excluded as it comes with the prefill).
    pub fn decode_tokens_per_second(&self) -> f64 {
        let n = self.token_ids.len().saturating_sub(1) as f64;
        let s = self.decode_time.as_secs_f64();
        if s > 0.0 {
            n / s
        } else {
            0.0
        }
    }
}

/// Generates a completion of `prompt_ids`, calling `on_text` with each new piece of text as it is final.
pub fn generate(
    model: &Llama,
    tokenizer: &TextTokenizer,
    prompt_ids: &[u32],
    cfg: &GenerationConfig,
    on_text: &mut dyn FnMut(&str),
) -> Result<Generation> {
    generate_until(model, tokenizer, prompt_ids, cfg, on_text, &|| false)
}

/// [`generate`] that also ends (with [`FinishReason::Cancelled`]) as soon as `cancelled` says so; it is asked
/// before each new token (beam search asks once, before it starts).
pub fn generate_until(
    model: &Llama,
    tokenizer: &TextTokenizer,
    prompt_ids: &[u32],
    cfg: &GenerationConfig,
    on_text: &mut dyn FnMut(&str),
    cancelled: &dyn Fn() -> bool,
) -> Result<Generation> {
    let mut state = DecodeState::new(prompt_ids, cfg, model.config().max_position_embeddings)?;
    // No autograd graph while generating (the KV cache would otherwise keep every step's).
    let model = &model.for_inference();
    if cfg.num_beams > 1 && !cancelled() {
        let mut generation = beam::beam_search(model, tokenizer, prompt_ids, state.config())?;
        if state.is_capped() && generation.finish_reason == FinishReason::Length {
            generation.finish_reason = FinishReason::Context;
        }
        on_text(&generation.text);
        return Ok(generation);
    }
    let mut cache = model.new_cache();
    let mut input = Tensor::new(prompt_ids, model.device())?.unsqueeze(0)?;
    loop {
        if cancelled() {
            state.cancel();
            break;
        }
        if state.out_of_time() {
            break;
        }
        let mut logits = model
            .forward_last(&input, Some(&mut cache))?
            .squeeze(0)?
            .to_vec1::<f32>()?;
        state.mark_prefilled();
        if state.step(&mut logits, tokenizer, on_text)?.is_some() {
            break;
        }
        let Some(next) = state.last_token() else {
            break;
        };
        input = Tensor::new(&[next], model.device())?.unsqueeze(0)?;
    }
    state.finish(tokenizer, on_text)
}
