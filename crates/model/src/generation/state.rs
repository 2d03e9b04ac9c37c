//! One sequence's generation, token by token, whoever runs the model: [`super::generate_until`] feeds it one
//! sequence's logits, the serving scheduler one row of a batched step. It holds the settings (capped to the
//! model's context), the sampler, the completion so far and its text stream, and decides when to stop.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::sampling::{self, SamplingParams};
use super::stream::TextStream;
use super::{FinishReason, Generation, GenerationConfig};
use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;

/// The state of one sequence being generated.
#[derive(Debug, Clone)]
pub struct DecodeState {
    cfg: GenerationConfig,
    capped: bool,
    history: Vec<u32>,
    generated: Vec<u32>,
    rng: StdRng,
    stream: TextStream,
    finish: Option<FinishReason>,
    start: Instant,
    prefilled_at: Option<Instant>,
}

impl DecodeState {
    /// Checks `cfg` and the prompt against a model context of `context` tokens; a request for more new tokens
    /// than the context leaves is capped there (finishing with [`FinishReason::Context`]).
    pub fn new(prompt_ids: &[u32], cfg: &GenerationConfig, context: usize) -> Result<DecodeState> {
        cfg.validate()?;
        if prompt_ids.is_empty() {
            return Err(Error::InvalidGeneration("the prompt is empty".into()));
        }
        if prompt_ids.len() >= context {
            return Err(Error::InvalidGeneration(format!(
                "the prompt has {} tokens and the model's context holds {context} tokens, which leaves no room for an answer; shorten the prompt",
                prompt_ids.len()
            )));
        }
        let room = context - prompt_ids.len();
        let capped = cfg.max_new_tokens > room;
        let mut cfg = cfg.clone();
        if capped {
            cfg.max_new_tokens = room;
            cfg.min_new_tokens = cfg.min_new_tokens.min(room);
        }
        Ok(DecodeState {
            rng: StdRng::seed_from_u64(cfg.seed),
            stream: TextStream::new(&cfg.stop_strings),
            cfg,
            capped,
            history: prompt_ids.to_vec(),
            generated: Vec::new(),
            finish: None,
            start: Instant::now(),
            prefilled_at: None,
        })
    }

    /// The settings in force (capped to the context).
    pub fn config(&self) -> &GenerationConfig {
        &self.cfg
    }

    /// Whether `max_new_tokens` was capped to the context.
    pub fn is_capped(&self) -> bool {
        self.capped
    }

    /// The ids generated so far.
    pub fn generated(&self) -> &[u32] {
        &self.generated
    }

    /// The token to feed next: the last one generated.
    pub fn last_token(&self) -> Option<u32> {
        self.generated.last().copied()
    }

    /// Why it ended, once it has.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    /// Records that the prompt has been processed (the prefill time ends here).
    pub fn mark_prefilled(&mut self) {
        self.prefilled_at.get_or_insert_with(Instant::now);
    }

    /// Ends the generation as cancelled (the caller went away).
    pub fn cancel(&mut self) {
        self.finish.get_or_insert(FinishReason::Cancelled);
    }

    /// Whether `max_time` has passed (the generation then ends with [`FinishReason::Length`]).
    pub fn out_of_time(&mut self) -> bool {
        let over = self.cfg.max_time.is_some_and(|t| self.start.elapsed() >= t);
        if over {
            self.finish.get_or_insert(FinishReason::Length);
        }
        over
    }

    /// Picks the next token from `logits` (the logits processors applied in place), emits the text that became
    /// final, and returns why generation ended when it did (a stop id is not kept).
    pub fn step(
        &mut self,
        logits: &mut [f32],
        tokenizer: &TextTokenizer,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Option<FinishReason>> {
        if self.finish.is_some() {
            return Ok(self.finish);
        }
        let next = self.choose(logits);
        let cfg = &self.cfg;
        if self.generated.len() >= cfg.min_new_tokens && cfg.stop_token_ids.contains(&next) {
            self.finish = Some(FinishReason::StopToken);
            return Ok(self.finish);
        }
        self.generated.push(next);
        self.history.push(next);
        let check_stop = self.generated.len() > self.cfg.min_new_tokens;
        if self
            .stream
            .push(tokenizer, &self.generated, check_stop, on_text)?
        {
            self.finish = Some(FinishReason::StopString);
        } else if self.generated.len() >= self.cfg.max_new_tokens {
            self.finish = Some(if self.capped {
                FinishReason::Context
            } else {
                FinishReason::Length
            });
        }
        Ok(self.finish)
    }

    /// Emits the rest of the text and returns the generation.
    pub fn finish(
        mut self,
        tokenizer: &TextTokenizer,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        let text = self.stream.finish(tokenizer, &self.generated, on_text)?;
        let total = self.start.elapsed();
        let prefill_time = self
            .prefilled_at
            .map_or(total, |t| t.duration_since(self.start));
        let finish_reason = self.finish.unwrap_or(if self.capped {
            FinishReason::Context
        } else {
            FinishReason::Length
        });
        Ok(Generation {
            token_ids: self.generated,
            text,
            finish_reason,
            prefill_time,
            decode_time: total.saturating_sub(prefill_time),
        })
    }

    /// Applies the logits processors and picks the next token (greedy or sampled).
    fn choose(&mut self, logits: &mut [f32]) -> u32 {
        let cfg = &self.cfg;
        sampling::apply_repetition_penalty(logits, &self.history, cfg.repetition_penalty as f32);
        sampling::apply_presence_frequency(
            logits,
            &self.generated,
            cfg.presence_penalty as f32,
            cfg.frequency_penalty as f32,
        );
        if self.generated.len() < cfg.min_new_tokens {
            sampling::suppress(logits, &cfg.stop_token_ids);
        }
        if cfg.temperature == 0.0 {
            return sampling::argmax(logits);
        }
        let params = SamplingParams {
            temperature: cfg.temperature as f32,
            top_k: cfg.top_k,
            top_p: cfg.top_p.map(|p| p as f32),
            min_p: cfg.min_p.map(|p| p as f32),
        };
        sampling::sample(logits, params, &mut self.rng)
    }
}
