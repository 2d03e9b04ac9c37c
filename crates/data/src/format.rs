//! A conversation chain into token ids and labels.
//!
//! **Markers (H2O LLM Studio's format).** Each piece is encoded on its own with `add_special_tokens = false` and the
//! ids are concatenated, so the boundaries between prompt and answer are exact:
//! - system (first turn's, only when non-empty): `text_system_start + system`, then EOS if `add_eos_token_to_system`;
//! - each turn's prompt: `text_prompt_start + prompt`, then EOS if `add_eos_token_to_prompt`, then
//!   `text_answer_separator` (encoded as one text with the prompt when there is no EOS between them);
//! - each turn's answer: `answer`, then EOS if `add_eos_token_to_answer`.
//!
//! The markers and the prompt column separator accept `\n`, `\t`, `\r`, `\\` escapes (H2O's `unicode_escape`).
//!
//! **Chat template.** Messages are system (when non-empty), then user/assistant per turn. Turn `i`'s prompt piece is
//! what rendering up to its user message with `add_generation_prompt = true` adds to the render of the turns
//! before; its answer piece is what rendering the assistant message adds to that. The answer's labelled span ends
//! with the last EOS token text in it (e.g. ChatML's `<|im_end|>`); what follows (the `\n`) is treated as prompt.
//! The `add_eos_token_to_*` flags do not apply: the template decides.
//!
//! **BOS.** When the tokenizer's post-processor adds tokens before the text (`encode("a", true)` vs
//! `encode("a", false)`), they start every sample (unless a chat template already rendered them) and count as
//! prompt.
//!
//! **Labels** equal the input ids (the loss shifts them), `-100` where masked: BOS, system and prompt tokens when
//! `mask_prompt_labels`; with `mask_prompt_labels && only_last_answer` also every answer but the last.
//!
//! **Per-piece limits** (`max_length_prompt` / `max_length_answer`, H2O LLM Studio's older settings): each system piece
//! keeps its first `max_length_prompt` tokens, each prompt piece (markers and EOS included) its last, each answer
//! (with its EOS) its first `max_length_answer` tokens, before the sample's own truncation.
//!
//! **Truncation** to `max_length` keeps the final answer: the oldest tokens after the BOS are cut first (the BOS
//! goes too only when the answer needs its room). If the final answer (with its EOS) alone is `max_length` tokens or
//! more, the sample is its first `max_length` tokens, with no prompt: the start of a long answer is kept, so the
//! model still learns how answers begin.

use crate::chat_template::Message;
use crate::conversation::Turn;
use crate::error::{Error, Result};
use crate::settings::{unescape, DatasetSettings};
use crate::tokenizer::TextTokenizer;

/// The label of a token that is not trained on.
pub const IGNORE_INDEX: i64 = -100;

/// One training or validation sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub input_ids: Vec<u32>,
    /// Same length as `input_ids`; [`IGNORE_INDEX`] where masked.
    pub labels: Vec<i64>,
    /// `input_ids[..prompt_len]` is everything before the final answer: the generation prompt.
    pub prompt_len: usize,
    /// Leading tokens added by the tokenizer's post-processor (the BOS), which truncation keeps.
    pub bos_len: usize,
    /// The text before the final answer (without a post-processor BOS): what generation continues.
    pub prompt_text: String,
    /// The final answer as in the data: the generation target.
    pub answer_text: String,
    /// The conversation's root id (or root row index): samples of one conversation share it.
    pub conversation_id: String,
    /// The 0-based row of the final turn in its file.
    pub row: usize,
    /// Whether tokens were cut to fit `max_length`.
    pub truncated: bool,
}

impl Sample {
    /// Number of tokens that carry a label.
    pub fn label_count(&self) -> usize {
        self.labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
    }
}

/// One row's token pieces in the marker format.
#[derive(Debug, Clone, Default)]
pub(crate) struct TurnIds {
    system: Vec<u32>,
    prompt: Vec<u32>,
    answer: Vec<u32>,
    /// A piece was cut to `max_length_prompt` / `max_length_answer`.
    cut: bool,
}

/// A sample before labels and truncation.
struct Draft {
    ids: Vec<u32>,
    masked: Vec<bool>,
    prompt_len: usize,
    bos_len: usize,
    prompt_text: String,
    /// A piece was cut to `max_length_prompt` / `max_length_answer`.
    cut: bool,
}

impl Draft {
    fn push(&mut self, ids: &[u32], masked: bool) {
        self.ids.extend_from_slice(ids);
        self.masked.extend(std::iter::repeat_n(masked, ids.len()));
    }
}

/// Turns conversations into samples for one tokenizer and settings.
pub(crate) struct Encoder<'a> {
    settings: &'a DatasetSettings,
    tokenizer: &'a TextTokenizer,
    eos: Option<(u32, String)>,
    bos: Vec<u32>,
    system_start: String,
    prompt_start: String,
    answer_separator: String,
}

impl<'a> Encoder<'a> {
    pub(crate) fn new(settings: &'a DatasetSettings, tokenizer: &'a TextTokenizer) -> Result<Self> {
        let eos = tokenizer
            .eos_token()
            .and_then(|t| tokenizer.token_id(t).map(|id| (id, t.to_string())));
        let wants_eos = settings.add_eos_token_to_system
            || settings.add_eos_token_to_prompt
            || settings.add_eos_token_to_answer;
        if eos.is_none() && wants_eos && !settings.use_chat_template {
            return Err(Error::MissingSpecialToken {
                what: "end-of-sequence".into(),
                help: "add `eos_token` to tokenizer_config.json, or set `dataset.add_eos_token_to_system`, `dataset.add_eos_token_to_prompt` and `dataset.add_eos_token_to_answer` to false".into(),
            });
        }
        if settings.use_chat_template && tokenizer.chat_template().is_none() {
            return Err(Error::NoChatTemplate);
        }
        Ok(Self {
            settings,
            tokenizer,
            eos,
            bos: post_processor_prefix(tokenizer)?,
            system_start: unescape(&settings.text_system_start),
            prompt_start: unescape(&settings.text_prompt_start),
            answer_separator: unescape(&settings.text_answer_separator),
        })
    }

    pub(crate) fn settings(&self) -> &DatasetSettings {
        self.settings
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        self.tokenizer.encode(text, false)
    }

    fn eos_id(&self) -> Vec<u32> {
        self.eos.iter().map(|(id, _)| *id).collect()
    }

    fn eos_text(&self, add: bool) -> &str {
        match (&self.eos, add) {
            (Some((_, text)), true) => text,
            _ => "",
        }
    }

    /// A row's pieces in the marker format (cached per row: chains reuse them).
    pub(crate) fn turn_ids(&self, turn: &Turn) -> Result<TurnIds> {
        if self.settings.use_chat_template {
            return Ok(TurnIds::default());
        }
        let s = self.settings;
        let mut system = Vec::new();
        if !turn.system.is_empty() {
            system = self.encode(&format!("{}{}", self.system_start, turn.system))?;
            if s.add_eos_token_to_system {
                system.extend(self.eos_id());
            }
        }
        let prompt_text = format!("{}{}", self.prompt_start, turn.prompt);
        let mut prompt = if s.add_eos_token_to_prompt {
            let mut ids = self.encode(&prompt_text)?;
            ids.extend(self.eos_id());
            ids.extend(self.encode(&self.answer_separator)?);
            ids
        } else {
            self.encode(&format!("{prompt_text}{}", self.answer_separator))?
        };
        let mut answer = self.encode(&turn.answer)?;
        if s.add_eos_token_to_answer {
            answer.extend(self.eos_id());
        }
        // H2O cuts the system text like the answer (its end), the prompt from its start.
        let cut = keep_first(&mut system, s.max_length_prompt)
            | keep_last(&mut prompt, s.max_length_prompt)
            | keep_first(&mut answer, s.max_length_answer);
        Ok(TurnIds {
            system,
            prompt,
            answer,
            cut,
        })
    }

    /// The sample for a chain of turns (oldest first) with their cached pieces; `row` is the last turn's row.
    pub(crate) fn sample(
        &self,
        turns: &[&Turn],
        ids: &[&TurnIds],
        conversation_id: String,
        row: usize,
    ) -> Result<Sample> {
        let draft = if self.settings.use_chat_template {
            self.chat_draft(turns)?
        } else {
            self.marker_draft(turns, ids)
        };
        let mut sample = self.finish(draft);
        sample.answer_text = turns.last().map(|t| t.answer.clone()).unwrap_or_default();
        sample.conversation_id = conversation_id;
        sample.row = row;
        Ok(sample)
    }

    fn marker_draft(&self, turns: &[&Turn], ids: &[&TurnIds]) -> Draft {
        let s = self.settings;
        let mask_prompt = s.mask_prompt_labels;
        let mut d = Draft {
            ids: Vec::new(),
            masked: Vec::new(),
            prompt_len: 0,
            bos_len: self.bos.len(),
            prompt_text: String::new(),
            cut: false,
        };
        d.push(&self.bos, mask_prompt);
        d.cut = ids.iter().any(|p| p.cut);
        if let (Some(first), Some(first_ids)) = (turns.first(), ids.first()) {
            d.push(&first_ids.system, mask_prompt);
            if !first.system.is_empty() {
                let eos = self.eos_text(s.add_eos_token_to_system);
                d.prompt_text = format!("{}{}{eos}", self.system_start, first.system);
            }
        }
        let last = turns.len().saturating_sub(1);
        for (i, (turn, piece)) in turns.iter().zip(ids).enumerate() {
            d.push(&piece.prompt, mask_prompt);
            let eos = self.eos_text(s.add_eos_token_to_prompt);
            d.prompt_text.push_str(&format!(
                "{}{}{eos}{}",
                self.prompt_start, turn.prompt, self.answer_separator
            ));
            if i == last {
                d.prompt_len = d.ids.len();
                d.push(&piece.answer, false);
            } else {
                d.push(&piece.answer, mask_prompt && s.only_last_answer);
                let eos = self.eos_text(s.add_eos_token_to_answer);
                d.prompt_text.push_str(&format!("{}{eos}", turn.answer));
            }
        }
        d
    }

    fn chat_draft(&self, turns: &[&Turn]) -> Result<Draft> {
        let s = self.settings;
        let mask_prompt = s.mask_prompt_labels;
        let template = self
            .tokenizer
            .chat_template()
            .ok_or(Error::NoChatTemplate)?;
        let mut messages = Vec::new();
        if let Some(system) = turns.first().map(|t| &t.system).filter(|t| !t.is_empty()) {
            messages.push(Message::new("system", system.clone()));
        }
        let mut d = Draft {
            ids: Vec::new(),
            masked: Vec::new(),
            prompt_len: 0,
            bos_len: 0,
            prompt_text: String::new(),
            cut: false,
        };
        let mut rendered = String::new();
        let last = turns.len().saturating_sub(1);
        for (i, turn) in turns.iter().enumerate() {
            messages.push(Message::new("user", turn.prompt.clone()));
            let prefix = template.render(&messages, true)?;
            messages.push(Message::new("assistant", turn.answer.clone()));
            let full = template.render(&messages, false)?;
            let prompt_piece = prefix
                .strip_prefix(rendered.as_str())
                .ok_or_else(|| not_incremental(i, "the prompt"))?;
            let answer_piece = full
                .strip_prefix(prefix.as_str())
                .ok_or_else(|| not_incremental(i, "the answer"))?;
            let mut prompt_ids = self.encode(prompt_piece)?;
            if i == 0 && !self.bos.is_empty() && !prompt_ids.starts_with(&self.bos) {
                d.push(&self.bos, mask_prompt);
                d.bos_len = self.bos.len();
            }
            d.cut |= keep_last(&mut prompt_ids, s.max_length_prompt);
            d.push(&std::mem::take(&mut prompt_ids), mask_prompt);
            let (labelled, tail) =
                split_after_eos(answer_piece, self.eos.as_ref().map(|(_, t)| t.as_str()));
            let mut answer_ids = self.encode(labelled)?;
            d.cut |= keep_first(&mut answer_ids, s.max_length_answer);
            if i == last {
                d.prompt_len = d.ids.len();
                d.prompt_text = prefix.clone();
                d.push(&answer_ids, false);
            } else {
                d.push(&answer_ids, mask_prompt && s.only_last_answer);
            }
            d.push(&self.encode(tail)?, mask_prompt);
            rendered = full;
        }
        Ok(d)
    }

    /// Labels and truncation.
    fn finish(&self, d: Draft) -> Sample {
        let max = self.settings.max_length;
        let labels: Vec<i64> = d
            .ids
            .iter()
            .zip(&d.masked)
            .map(|(&id, &m)| if m { IGNORE_INDEX } else { i64::from(id) })
            .collect();
        let mut sample = Sample {
            input_ids: d.ids,
            labels,
            prompt_len: d.prompt_len,
            bos_len: d.bos_len,
            prompt_text: d.prompt_text,
            answer_text: String::new(),
            conversation_id: String::new(),
            row: 0,
            truncated: d.cut,
        };
        let n = sample.input_ids.len();
        if n <= max {
            return sample;
        }
        sample.truncated = true;
        let answer_len = n - sample.prompt_len;
        if answer_len >= max {
            let range = sample.prompt_len..sample.prompt_len + max;
            sample.input_ids = sample.input_ids[range.clone()].to_vec();
            sample.labels = sample.labels[range].to_vec();
            sample.prompt_len = 0;
            sample.bos_len = 0;
            return sample;
        }
        // Keep the BOS unless the answer needs its room; then cut the oldest tokens.
        let bos = if answer_len + sample.bos_len <= max {
            sample.bos_len
        } else {
            0
        };
        let cut = n - max;
        sample.input_ids.drain(bos..bos + cut);
        sample.labels.drain(bos..bos + cut);
        sample.prompt_len -= cut;
        sample.bos_len = bos;
        sample
    }
}

/// Keeps the first `limit` ids (H2O's right-side truncation); whether any were cut.
fn keep_first(ids: &mut Vec<u32>, limit: Option<usize>) -> bool {
    match limit {
        Some(n) if ids.len() > n => {
            ids.truncate(n);
            true
        }
        _ => false,
    }
}

/// Keeps the last `limit` ids (H2O's left-side truncation of prompts); whether any were cut.
fn keep_last(ids: &mut Vec<u32>, limit: Option<usize>) -> bool {
    match limit {
        Some(n) if ids.len() > n => {
            ids.drain(..ids.len() - n);
            true
        }
        _ => false,
    }
}

fn not_incremental(turn: usize, what: &str) -> Error {
    Error::ChatTemplateNotIncremental {
        turn: turn + 1,
        detail: format!("rendering {what} changed the text rendered before it"),
    }
}

/// Splits an answer piece after the last occurrence of the EOS text (the rest is template glue such as `\n`).
fn split_after_eos<'t>(piece: &'t str, eos: Option<&str>) -> (&'t str, &'t str) {
    match eos
        .filter(|e| !e.is_empty())
        .and_then(|e| piece.rfind(e).map(|at| at + e.len()))
    {
        Some(end) => piece.split_at(end),
        None => (piece, ""),
    }
}

/// The ids the tokenizer's post-processor puts before a text (e.g. Llama's BOS), found by encoding `"a"` with and
/// without special tokens.
pub(crate) fn post_processor_prefix(tokenizer: &TextTokenizer) -> Result<Vec<u32>> {
    let with = tokenizer.encode("a", true)?;
    let without = tokenizer.encode("a", false)?;
    if without.is_empty() || with.len() <= without.len() {
        return Ok(Vec::new());
    }
    Ok(with
        .windows(without.len())
        .position(|w| w == without.as_slice())
        .map(|at| with[..at].to_vec())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eos_split_keeps_glue_out_of_the_answer() {
        assert_eq!(
            split_after_eos("Hi<|im_end|>\n", Some("<|im_end|>")),
            ("Hi<|im_end|>", "\n")
        );
        assert_eq!(split_after_eos("Hi", Some("<|im_end|>")), ("Hi", ""));
        assert_eq!(split_after_eos("Hi\n", None), ("Hi\n", ""));
    }
}
