//! The tokenized first batch as JSON, for inspection in the GUI: ids, labels and the decoded text of each row split
//! into masked and trained segments.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::format::IGNORE_INDEX;
use crate::tokenizer::TextTokenizer;

/// A run of tokens of one row decoded to text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub text: String,
    /// True when these tokens carry no label (prompt, system, masked history).
    pub masked: bool,
    /// The packed sample (sequence id) the tokens belong to.
    pub sequence: u32,
}

/// One row of the batch as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowDump {
    pub input_ids: Vec<u32>,
    pub labels: Vec<i64>,
    pub attention_mask: Vec<u32>,
    /// The non-padding tokens, decoded in runs of equal masking and sequence.
    pub segments: Vec<Segment>,
    /// Number of padding tokens.
    pub padding: usize,
}

/// The saved batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchDump {
    pub rows: Vec<RowDump>,
}

/// The batch decoded for display.
pub fn dump_batch(batch: &Batch, tokenizer: &TextTokenizer) -> Result<BatchDump> {
    let mut rows = Vec::with_capacity(batch.len());
    for r in 0..batch.len() {
        let ids = &batch.input_ids[r];
        let labels = &batch.labels[r];
        let attention = &batch.attention_mask[r];
        let sequence = &batch.sequence_ids[r];
        let mut segments: Vec<Segment> = Vec::new();
        let mut run: Vec<u32> = Vec::new();
        let mut key: Option<(bool, u32)> = None;
        for t in 0..ids.len() {
            if attention[t] == 0 {
                continue;
            }
            let k = (labels[t] == IGNORE_INDEX, sequence[t]);
            if key.is_some_and(|old| old != k) {
                flush(&mut segments, &mut run, key, tokenizer)?;
            }
            key = Some(k);
            run.push(ids[t]);
        }
        flush(&mut segments, &mut run, key, tokenizer)?;
        rows.push(RowDump {
            input_ids: ids.clone(),
            labels: labels.clone(),
            attention_mask: attention.clone(),
            segments,
            padding: attention.iter().filter(|&&a| a == 0).count(),
        });
    }
    Ok(BatchDump { rows })
}

fn flush(
    segments: &mut Vec<Segment>,
    run: &mut Vec<u32>,
    key: Option<(bool, u32)>,
    tokenizer: &TextTokenizer,
) -> Result<()> {
    if let (Some((masked, sequence)), false) = (key, run.is_empty()) {
        segments.push(Segment {
            text: tokenizer.decode(run, false)?,
            masked,
            sequence,
        });
    }
    run.clear();
    Ok(())
}

/// Writes [`dump_batch`] of `batch` to `path` as pretty JSON.
pub fn save_first_batch(batch: &Batch, tokenizer: &TextTokenizer, path: &Path) -> Result<()> {
    let dump = dump_batch(batch, tokenizer)?;
    let io = |source: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let json = serde_json::to_vec_pretty(&dump).map_err(|e| io(std::io::Error::other(e)))?;
    ferrotune_home::atomic::write(path, &json).map_err(io)
}
