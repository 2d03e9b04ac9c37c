//! `tokenizer`: sequence length and padding.

use crate::macros::settings_struct;
use crate::meta::meta;

settings_struct! {
    /// Tokenizer: how long a tokenized sample may be and how batches are padded.
    pub struct Tokenizer in "tokenizer." {
        /// Longest sample in tokens (prompt and answer together); longer samples are cut, keeping the end.
        max_length: u32 = 512 => meta().basic().min(16.0).max(1_048_576.0).grid();
        /// Most tokens of each prompt (with its markers), cut from its start; 0: no limit but `max_length` (H2O LLM Studio's older setting).
        max_length_prompt: u32 = 0 => meta().min(0.0).max(1_048_576.0);
        /// Most tokens of each answer (with its EOS), cut at its end; 0: no limit but `max_length` (H2O LLM Studio's older setting).
        max_length_answer: u32 = 0 => meta().min(0.0).max(1_048_576.0);
        /// Pad each batch to this quantile of its lengths (1.0: to the longest sample; lower cuts outliers).
        padding_quantile: f64 = 1.0 => meta().min(0.0).max(1.0);
    }
}
