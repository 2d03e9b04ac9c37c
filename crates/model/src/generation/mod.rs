//! Text generation with a KV cache: greedy, sampling (temperature, top-k, top-p, repetition penalty, seedable)
//! and beam search; minimum/maximum new tokens, stop token ids and stop strings; streaming of text deltas.

mod beam;
pub mod sampling;
mod stream;

use std::time::{Duration, Instant};

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::models::Llama;
use crate::tokenizer::TextTokenizer;
use sampling::SamplingParams;
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
    cfg.validate()?;
    if prompt_ids.is_empty() {
        return Err(Error::InvalidGeneration("the prompt is empty".into()));
    }
    // A request longer than the model's context is capped there (finishing with `Context`).
    let context = model.config().max_position_embeddings;
    if prompt_ids.len() >= context {
        return Err(Error::InvalidGeneration(format!(
            "the prompt has {} tokens and the model's context holds {context} tokens, which leaves no room for an answer; shorten the prompt",
            prompt_ids.len()
        )));
    }
    let room = context - prompt_ids.len();
    let capped = cfg.max_new_tokens > room;
    let capped_cfg;
    let cfg = if capped {
        capped_cfg = GenerationConfig {
            max_new_tokens: room,
            min_new_tokens: cfg.min_new_tokens.min(room),
            ..cfg.clone()
        };
        &capped_cfg
    } else {
        cfg
    };
    // No autograd graph while generating (the KV cache would otherwise keep every step's).
    let model = &model.for_inference();
    if cfg.num_beams > 1 && !cancelled() {
        let mut generation = beam::beam_search(model, tokenizer, prompt_ids, cfg)?;
        if capped && generation.finish_reason == FinishReason::Length {
            generation.finish_reason = FinishReason::Context;
        }
        on_text(&generation.text);
        return Ok(generation);
    }
    let device = model.device();
    let mut cache = model.new_cache();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut stream = TextStream::new(tokenizer, &cfg.stop_strings);
    let mut history: Vec<u32> = prompt_ids.to_vec();
    let mut generated: Vec<u32> = Vec::new();
    let start = Instant::now();
    let mut input = Tensor::new(prompt_ids, device)?.unsqueeze(0)?;
    let mut prefill_time = None;
    let mut finish = if capped {
        FinishReason::Context
    } else {
        FinishReason::Length
    };
    while generated.len() < cfg.max_new_tokens {
        if cancelled() {
            finish = FinishReason::Cancelled;
            break;
        }
        if cfg.max_time.is_some_and(|t| start.elapsed() >= t) {
            finish = FinishReason::Length;
            break;
        }
        let mut logits = model
            .forward_last(&input, Some(&mut cache))?
            .squeeze(0)?
            .to_vec1::<f32>()?;
        prefill_time.get_or_insert_with(|| start.elapsed());
        let next = choose(&mut logits, &history, generated.len(), cfg, &mut rng);
        if generated.len() >= cfg.min_new_tokens && cfg.stop_token_ids.contains(&next) {
            finish = FinishReason::StopToken;
            break;
        }
        generated.push(next);
        history.push(next);
        let stopped = stream.push(&generated, generated.len() > cfg.min_new_tokens, on_text)?;
        if stopped {
            finish = FinishReason::StopString;
            break;
        }
        input = Tensor::new(&[next], device)?.unsqueeze(0)?;
    }
    let text = stream.finish(&generated, on_text)?;
    let total = start.elapsed();
    let prefill_time = prefill_time.unwrap_or(total);
    Ok(Generation {
        token_ids: generated,
        text,
        finish_reason: finish,
        prefill_time,
        decode_time: total.saturating_sub(prefill_time),
    })
}

/// Applies the logits processors and picks the next token (greedy or sampled).
fn choose(
    logits: &mut [f32],
    history: &[u32],
    n_generated: usize,
    cfg: &GenerationConfig,
    rng: &mut StdRng,
) -> u32 {
    sampling::apply_repetition_penalty(logits, history, cfg.repetition_penalty as f32);
    if n_generated < cfg.min_new_tokens {
        sampling::suppress(logits, &cfg.stop_token_ids);
    }
    if cfg.temperature == 0.0 {
        return sampling::argmax(logits);
    }
    let params = SamplingParams {
        temperature: cfg.temperature as f32,
        top_k: cfg.top_k,
        top_p: cfg.top_p.map(|p| p as f32),
    };
    sampling::sample(logits, params, rng)
}
