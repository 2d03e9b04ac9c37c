//! Incremental detokenization with stop strings: text is released only once it can no longer become part of a
//! stop string and holds no incomplete UTF-8 sequence.

use crate::error::Result;
use crate::tokenizer::TextTokenizer;

/// Turns a growing list of token ids into text deltas.
#[derive(Debug, Clone)]
pub struct TextStream {
    stop_strings: Vec<String>,
    emitted: usize,
    final_text: Option<String>,
}

impl TextStream {
    /// A stream that watches for `stop_strings`.
    pub fn new(stop_strings: &[String]) -> Self {
        Self {
            stop_strings: stop_strings.to_vec(),
            emitted: 0,
            final_text: None,
        }
    }

    /// Feeds all ids generated so far; emits what became final. Returns true when a stop string appeared
    /// (only checked when `check_stop`).
    pub fn push(
        &mut self,
        tokenizer: &TextTokenizer,
        ids: &[u32],
        check_stop: bool,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<bool> {
        let text = tokenizer.decode(ids, true)?;
        if check_stop {
            if let Some(cut) = self
                .stop_strings
                .iter()
                .filter(|s| !s.is_empty())
                .filter_map(|s| text.find(s.as_str()))
                .min()
            {
                let kept = text[..cut].to_string();
                self.emit_up_to(&kept, kept.len(), on_text);
                self.final_text = Some(kept);
                return Ok(true);
            }
        }
        let mut safe = text.len();
        if text.ends_with('\u{FFFD}') {
            safe -= '\u{FFFD}'.len_utf8();
        }
        // Hold back a suffix that could still grow into a stop string.
        for s in &self.stop_strings {
            for k in (1..s.len()).rev() {
                if s.is_char_boundary(k) && text[..safe].ends_with(&s[..k]) {
                    safe = safe.min(text[..safe].len() - k);
                    break;
                }
            }
        }
        self.emit_up_to(&text, safe, on_text);
        Ok(false)
    }

    fn emit_up_to(&mut self, text: &str, end: usize, on_text: &mut dyn FnMut(&str)) {
        if end > self.emitted && text.is_char_boundary(self.emitted) && text.is_char_boundary(end) {
            on_text(&text[self.emitted..end]);
            self.emitted = end;
        }
    }

    /// Emits the rest and returns the whole completion text.
    pub fn finish(
        &mut self,
        tokenizer: &TextTokenizer,
        ids: &[u32],
        on_text: &mut dyn FnMut(&str),
    ) -> Result<String> {
        let text = match self.final_text.take() {
            Some(t) => t,
            None => tokenizer.decode(ids, true)?,
        };
        self.emit_up_to(&text, text.len(), on_text);
        Ok(text)
    }
}
