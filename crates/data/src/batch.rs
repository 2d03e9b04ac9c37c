//! Samples into padded batches, packed rows, and the seeded batch order.
//!
//! **Padding.** A batch is padded (right by default) with the tokenizer's pad token, else its EOS. Its length is
//! the longest sample when `padding_quantile >= 1`; `max_length` when it is 0 (fixed shapes); otherwise H2O's
//! rule: `ceil` of the `padding_quantile` quantile (linear interpolation) of the batch's lengths, and longer
//! samples lose their oldest tokens (after the BOS), as H2O cuts its left-padded batches. Evaluation batches use
//! `padding_quantile = 1`. Padded positions have attention 0, label -100, position 0 and sequence id 0.
//!
//! **Packing.** [`pack`] places samples into rows of at most `max_length` tokens (first-fit decreasing);
//! [`collate_packed`] concatenates each row's samples with position ids restarting at 0 and sequence ids 1, 2, …
//! per sample (0 for padding), for block-diagonal attention. The first label of every packed sample is -100, so no
//! sample is trained to predict the next one's first token.
//!
//! **Order.** [`BatchSampler`] shuffles indices per epoch as a function of (seed, epoch) only, so a run resumed at
//! an (epoch, step) [`Position`] sees the same batches as one that never stopped.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::{Sample, IGNORE_INDEX};
use crate::settings::DatasetSettings;
use crate::split::{permutation, Rng, STREAM_EPOCH};
use crate::tokenizer::TextTokenizer;

/// Where padding goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaddingSide {
    #[default]
    Right,
    /// For batched generation from prompts.
    Left,
}

/// How batches are padded.
#[derive(Debug, Clone, PartialEq)]
pub struct PadOptions {
    pub pad_id: u32,
    pub max_length: usize,
    pub padding_quantile: f64,
    pub side: PaddingSide,
}

impl PadOptions {
    /// Training batches: the settings' `padding_quantile`.
    pub fn train(settings: &DatasetSettings, tokenizer: &TextTokenizer) -> Result<Self> {
        Ok(Self {
            pad_id: pad_token_id(tokenizer)?,
            max_length: settings.max_length,
            padding_quantile: settings.padding_quantile,
            side: PaddingSide::Right,
        })
    }

    /// Evaluation batches: padded to the longest sample.
    pub fn eval(settings: &DatasetSettings, tokenizer: &TextTokenizer) -> Result<Self> {
        Ok(Self {
            padding_quantile: 1.0,
            ..Self::train(settings, tokenizer)?
        })
    }
}

/// The pad id: the tokenizer's pad token, else its EOS.
pub fn pad_token_id(tokenizer: &TextTokenizer) -> Result<u32> {
    [tokenizer.pad_token(), tokenizer.eos_token()]
        .into_iter()
        .flatten()
        .find_map(|t| tokenizer.token_id(t))
        .ok_or_else(|| Error::MissingSpecialToken {
            what: "padding (nor end-of-sequence)".into(),
            help: "add `pad_token` or `eos_token` to the backbone's tokenizer_config.json".into(),
        })
}

/// A padded batch; every inner vector has the batch's sequence length.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub input_ids: Vec<Vec<u32>>,
    /// 1 for tokens, 0 for padding.
    pub attention_mask: Vec<Vec<u32>>,
    /// Aligned with `input_ids` (the loss shifts them); -100 where not trained.
    pub labels: Vec<Vec<i64>>,
    /// 0, 1, … per sample (restarting per packed sample); 0 on padding.
    pub position_ids: Vec<Vec<u32>>,
    /// 1, 2, … for the samples of a row, 0 for padding.
    pub sequence_ids: Vec<Vec<u32>>,
    /// The sample indices in each row.
    pub sample_indices: Vec<Vec<usize>>,
}

impl Batch {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// The padded sequence length.
    pub fn seq_len(&self) -> usize {
        self.input_ids.first().map_or(0, Vec::len)
    }

    /// Number of labelled tokens.
    pub fn label_count(&self) -> usize {
        self.labels
            .iter()
            .flatten()
            .filter(|&&l| l != IGNORE_INDEX)
            .count()
    }

    fn push_row(
        &mut self,
        segments: &[(&[u32], &[i64])],
        indices: Vec<usize>,
        len: usize,
        opts: &PadOptions,
    ) {
        let used: usize = segments.iter().map(|(ids, _)| ids.len()).sum();
        let pad = len.saturating_sub(used);
        let mut row = Row::default();
        if opts.side == PaddingSide::Left {
            row.pad(pad, opts.pad_id);
        }
        for (k, (ids, labels)) in segments.iter().enumerate() {
            row.segment(k as u32 + 1, ids, labels);
        }
        if opts.side == PaddingSide::Right {
            row.pad(pad, opts.pad_id);
        }
        self.input_ids.push(row.ids);
        self.attention_mask.push(row.mask);
        self.labels.push(row.labels);
        self.position_ids.push(row.positions);
        self.sequence_ids.push(row.sequences);
        self.sample_indices.push(indices);
    }
}

/// One batch row being built.
#[derive(Default)]
struct Row {
    ids: Vec<u32>,
    mask: Vec<u32>,
    labels: Vec<i64>,
    positions: Vec<u32>,
    sequences: Vec<u32>,
}

impl Row {
    fn pad(&mut self, n: usize, pad_id: u32) {
        self.ids.extend(std::iter::repeat_n(pad_id, n));
        self.mask.extend(std::iter::repeat_n(0, n));
        self.labels.extend(std::iter::repeat_n(IGNORE_INDEX, n));
        self.positions.extend(std::iter::repeat_n(0, n));
        self.sequences.extend(std::iter::repeat_n(0, n));
    }

    fn segment(&mut self, sequence: u32, ids: &[u32], labels: &[i64]) {
        self.ids.extend_from_slice(ids);
        self.mask.extend(std::iter::repeat_n(1, ids.len()));
        self.labels.extend_from_slice(labels);
        self.positions.extend(0..ids.len() as u32);
        self.sequences
            .extend(std::iter::repeat_n(sequence, ids.len()));
    }
}

/// The padded length for samples of `lengths` (see the module docs).
pub fn padded_length(lengths: &[usize], opts: &PadOptions) -> usize {
    let longest = lengths.iter().copied().max().unwrap_or(0);
    if opts.padding_quantile <= 0.0 {
        return opts.max_length.max(longest);
    }
    if opts.padding_quantile >= 1.0 || lengths.is_empty() {
        return longest;
    }
    let mut sorted: Vec<f64> = lengths.iter().map(|&l| l as f64).collect();
    sorted.sort_by(f64::total_cmp);
    let at = opts.padding_quantile * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    let q = sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64);
    ((q - 1e-9).ceil() as usize).clamp(1, longest.max(1))
}

/// The samples `indices` of `samples` as one padded batch.
pub fn collate(samples: &[Sample], indices: &[usize], opts: &PadOptions) -> Batch {
    let lengths: Vec<usize> = indices
        .iter()
        .map(|&i| samples[i].input_ids.len())
        .collect();
    let len = padded_length(&lengths, opts);
    let mut batch = Batch::default();
    for &i in indices {
        let s = &samples[i];
        let n = s.input_ids.len();
        if n <= len {
            batch.push_row(&[(&s.input_ids, &s.labels)], vec![i], len, opts);
        } else {
            // Cut the oldest tokens after the BOS (all of the BOS too when it alone exceeds the room).
            let bos = if s.bos_len < len { s.bos_len } else { 0 };
            let keep = |v: &[u32]| [&v[..bos], &v[n - (len - bos)..]].concat();
            let ids = keep(&s.input_ids);
            let labels = [&s.labels[..bos], &s.labels[n - (len - bos)..]].concat();
            batch.push_row(&[(&ids, &labels)], vec![i], len, opts);
        }
    }
    batch
}

/// Packs samples of `lengths` into rows of at most `max_length` tokens, first-fit decreasing; each row lists its
/// sample indices in increasing order, and rows are ordered by their first sample. A sample longer than
/// `max_length` gets a row of its own.
pub fn pack(lengths: &[usize], max_length: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut tree = FreeTree::new(lengths.len().max(1), max_length);
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for i in order {
        let need = lengths[i].min(max_length);
        let bin = tree.first_fit(need);
        if bin == rows.len() {
            rows.push(Vec::new());
        }
        tree.take(bin, need);
        rows[bin].push(i);
    }
    for row in &mut rows {
        row.sort_unstable();
    }
    rows.sort_by_key(|r| r[0]);
    rows
}

/// Free room per bin, as a max segment tree: the first bin with room for `need` in O(log n).
struct FreeTree {
    size: usize,
    room: Vec<usize>,
}

impl FreeTree {
    fn new(bins: usize, capacity: usize) -> Self {
        let size = bins.next_power_of_two();
        Self {
            size,
            room: vec![capacity; 2 * size],
        }
    }

    fn first_fit(&self, need: usize) -> usize {
        let mut node = 1;
        while node < self.size {
            node = if self.room[2 * node] >= need {
                2 * node
            } else {
                2 * node + 1
            };
        }
        node - self.size
    }

    fn take(&mut self, bin: usize, amount: usize) {
        let mut node = bin + self.size;
        self.room[node] -= amount;
        while node > 1 {
            node /= 2;
            self.room[node] = self.room[2 * node].max(self.room[2 * node + 1]);
        }
    }
}

/// The packed rows `row_indices` of `rows` (from [`pack`]) as one batch, padded to the longest row (or to
/// `max_length` when `padding_quantile` is 0).
pub fn collate_packed(
    samples: &[Sample],
    rows: &[Vec<usize>],
    row_indices: &[usize],
    opts: &PadOptions,
) -> Batch {
    let lengths: Vec<usize> = row_indices
        .iter()
        .map(|&r| rows[r].iter().map(|&i| samples[i].input_ids.len()).sum())
        .collect();
    let longest = lengths.iter().copied().max().unwrap_or(0);
    let len = if opts.padding_quantile <= 0.0 {
        opts.max_length.max(longest)
    } else {
        longest
    };
    let mut batch = Batch::default();
    for &r in row_indices {
        let labels: Vec<Vec<i64>> = rows[r]
            .iter()
            .map(|&i| {
                let mut l = samples[i].labels.clone();
                if let Some(first) = l.first_mut() {
                    *first = IGNORE_INDEX;
                }
                l
            })
            .collect();
        let segments: Vec<(&[u32], &[i64])> = rows[r]
            .iter()
            .zip(&labels)
            .map(|(&i, l)| (samples[i].input_ids.as_slice(), l.as_slice()))
            .collect();
        batch.push_row(&segments, rows[r].clone(), len, opts);
    }
    batch
}

/// A place in training: the epoch and the step (batch) within it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub epoch: u64,
    pub step: usize,
}

/// Batches of indices `0..len`, shuffled per epoch as a function of (seed, epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSampler {
    pub len: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub shuffle: bool,
    /// Drop the last partial batch (kept anyway when it would be the only one, as H2O does).
    pub drop_last: bool,
}

impl BatchSampler {
    /// Shuffled batches of `batch_size` (at least 1) over `len` items, keeping the last partial batch.
    pub fn new(len: usize, batch_size: usize, seed: u64) -> Self {
        Self {
            len,
            batch_size: batch_size.max(1),
            seed,
            shuffle: true,
            drop_last: false,
        }
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let full = self.len / self.batch_size;
        if self.drop_last && full > 0 {
            full
        } else {
            self.len.div_ceil(self.batch_size)
        }
    }

    /// The order of indices in `epoch`.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        if self.shuffle {
            permutation(self.len, &mut Rng::new(self.seed, STREAM_EPOCH, epoch))
        } else {
            (0..self.len).collect()
        }
    }

    /// The batch at `pos`, if the epoch has that step.
    pub fn batch(&self, pos: Position) -> Option<Vec<usize>> {
        batch_of(&self.epoch_order(pos.epoch), pos.step, self)
    }

    /// Batches from `start` on, across epochs without end (none when there are no items).
    pub fn iter_from(&self, start: Position) -> BatchIter {
        BatchIter {
            sampler: self.clone(),
            pos: start,
            order: None,
        }
    }
}

fn batch_of(order: &[usize], step: usize, sampler: &BatchSampler) -> Option<Vec<usize>> {
    if step >= sampler.batches_per_epoch() {
        return None;
    }
    let start = step * sampler.batch_size;
    Some(order[start..(start + sampler.batch_size).min(order.len())].to_vec())
}

/// Iterator of ([`Position`], batch indices) from [`BatchSampler::iter_from`].
#[derive(Debug, Clone)]
pub struct BatchIter {
    sampler: BatchSampler,
    pos: Position,
    order: Option<(u64, Vec<usize>)>,
}

impl Iterator for BatchIter {
    type Item = (Position, Vec<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        let per_epoch = self.sampler.batches_per_epoch();
        if per_epoch == 0 {
            return None;
        }
        if self.pos.step >= per_epoch {
            self.pos = Position {
                epoch: self.pos.epoch + self.pos.step as u64 / per_epoch as u64,
                step: self.pos.step % per_epoch,
            };
        }
        if self.order.as_ref().map(|(e, _)| *e) != Some(self.pos.epoch) {
            self.order = Some((self.pos.epoch, self.sampler.epoch_order(self.pos.epoch)));
        }
        let order = self
            .order
            .as_ref()
            .map(|(_, o)| o.as_slice())
            .unwrap_or_default();
        let batch = batch_of(order, self.pos.step, &self.sampler)?;
        let here = self.pos;
        self.pos.step += 1;
        Some((here, batch))
    }
}
