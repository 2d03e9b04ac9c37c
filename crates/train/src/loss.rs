//! Causal-LM cross-entropy, shifted as transformers does (the logits at position t predict the label at t+1;
//! `-100` labels are ignored), with H2O LLM Studio's two averagings. Logits are computed only at labelled
//! positions: the LM head (hidden × vocabulary) is the largest matmul of a small model, and prompt positions
//! are usually masked.

use candle_core::{DType, Tensor, D};
use ferrotune_model::{ForwardOptions, Llama, Packing};

use crate::error::{Error, Result};

pub use ferrotune_data::IGNORE_INDEX;

/// How token losses are averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// Mean over all labelled tokens of the batch.
    TokenAveraged,
    /// Mean over samples of each sample's mean token loss.
    SampleAveraged,
}

impl From<ferrotune_config::LossFunction> for LossKind {
    /// The averaging of a causal-LM loss; the preference losses' token terms (ORPO's NLL, the evaluation of the
    /// chosen answers) are token-averaged.
    fn from(l: ferrotune_config::LossFunction) -> Self {
        use ferrotune_config::LossFunction as L;
        match l {
            L::TokenAveragedCrossEntropy => Self::TokenAveraged,
            L::SampleAveragedCrossEntropy => Self::SampleAveraged,
            L::DpoLoss
            | L::DpoHingeLoss
            | L::DpoIpoLoss
            | L::KtoPairLoss
            | L::CpoLoss
            | L::SimPoLoss
            | L::OrpoLoss
            | L::BinaryCrossEntropyLoss
            | L::CrossEntropyLoss
            | L::MseLoss
            | L::MaeLoss => Self::TokenAveraged,
        }
    }
}

/// The loss of one batch and what it was computed over.
pub struct BatchLoss {
    /// Scalar f32 loss (differentiable with respect to the adapters).
    pub loss: Tensor,
    /// Sum of token negative log-likelihoods (for perplexity).
    pub nll_sum: f64,
    /// Number of labelled (predicted) tokens.
    pub tokens: usize,
    /// Per row: (sum of token NLLs, labelled tokens).
    pub rows: Vec<(f64, usize)>,
}

/// How the token losses of a batch are weighted: fixed by the whole batch, so a batch computed in pieces (see
/// [`unpadded_rows`]) sums to the same loss and gradients as the batch computed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalization {
    kind: LossKind,
    /// Labelled tokens of the whole batch.
    total: usize,
    /// Rows of the whole batch with at least one labelled token.
    rows_with_labels: usize,
}

impl Normalization {
    /// The weighting of the batch whose labels are `labels` (rows of any lengths).
    pub fn of(labels: &[Vec<i64>], kind: LossKind) -> Result<Self> {
        let per_row = labels.iter().map(|l| labelled(l));
        let total: usize = per_row.clone().sum();
        if total == 0 {
            return Err(Error::Setting(
                "every label of the batch is masked\nhelp: check `dataset.mask_prompt_labels` and `tokenizer.max_length` (answers may be cut away)".into(),
            ));
        }
        Ok(Self {
            kind,
            total,
            rows_with_labels: per_row.filter(|&n| n > 0).count(),
        })
    }

    /// The weight of each labelled token of a row with `row_tokens` labelled tokens.
    fn weight(&self, row_tokens: usize) -> f32 {
        match self.kind {
            LossKind::TokenAveraged => 1.0 / self.total as f32,
            LossKind::SampleAveraged => 1.0 / (row_tokens * self.rows_with_labels) as f32,
        }
    }
}

/// Labelled (predicted) positions of a row: every label but the first, which nothing predicts.
fn labelled(labels: &[i64]) -> usize {
    labels
        .iter()
        .skip(1)
        .filter(|&&x| x != IGNORE_INDEX)
        .count()
}

/// The rows of a right-padded batch cut to their attention length, each with its index, leaving out rows with
/// no labelled token. Causal attention never lets a real token see the padding after it, so the rows computed
/// one by one give exactly the losses and gradients of the padded batch, without the padding's work and with a
/// quarter of a batch of 4's activations alive at once.
pub fn unpadded_rows(
    input_ids: &[Vec<u32>],
    labels: &[Vec<i64>],
    attention_mask: &[Vec<u32>],
) -> Vec<(usize, Vec<u32>, Vec<i64>)> {
    input_ids
        .iter()
        .zip(labels)
        .zip(attention_mask)
        .enumerate()
        .filter_map(|(i, ((ids, labels), mask))| {
            // Right padding: the real tokens are the prefix up to the last attended position.
            let len = mask.iter().rposition(|&m| m != 0).map_or(0, |p| p + 1);
            let (ids, labels) = (&ids[..len], &labels[..len]);
            (len >= 2 && labelled(labels) > 0).then(|| (i, ids.to_vec(), labels.to_vec()))
        })
        .collect()
}

/// Unpadded rows ([`unpadded_rows`]) joined into one row of samples that attend only within themselves, with
/// positions restarting per sample: one pass with the whole batch's rows in each matrix product (fewer, larger
/// GEMMs than row by row) and none of the padding. Each sample's first label is masked, as nothing in its row
/// predicted it.
pub fn concatenate(rows: &[(usize, Vec<u32>, Vec<i64>)]) -> (Vec<u32>, Vec<i64>, Packing) {
    let (mut ids, mut labels) = (Vec::new(), Vec::new());
    let (mut positions, mut sequences) = (Vec::new(), Vec::new());
    for (sample, (_, row_ids, row_labels)) in rows.iter().enumerate() {
        ids.extend_from_slice(row_ids);
        labels.push(IGNORE_INDEX);
        labels.extend_from_slice(&row_labels[1..]);
        positions.extend(0..row_ids.len() as u32);
        sequences.extend(std::iter::repeat_n(sample as u32 + 1, row_ids.len()));
    }
    let packing = Packing {
        position_ids: vec![positions],
        sequence_ids: vec![sequences],
    };
    (ids, labels, packing)
}

/// The labelled positions of rows of equal length `t`: each predicting position `row·t + i` (flat) and the
/// label it predicts (`labels[row][i + 1]`).
pub fn labelled_positions(labels: &[Vec<i64>]) -> (Vec<u32>, Vec<u32>) {
    let t = labels.first().map_or(0, Vec::len);
    let (mut positions, mut targets) = (Vec::new(), Vec::new());
    for (r, row) in labels.iter().enumerate() {
        for (i, &label) in row.iter().enumerate().skip(1) {
            if label != IGNORE_INDEX {
                positions.push((r * t + i - 1) as u32);
                targets.push(label as u32);
            }
        }
    }
    (positions, targets)
}

/// Forward pass of rows of equal length and the negative log-likelihood `(n)` (f32, differentiable with
/// respect to the adapters) of `targets` at the flat predicting `positions`: logits only where they are needed.
pub fn token_nll(
    model: &Llama,
    input_ids: &[Vec<u32>],
    positions: &[u32],
    targets: &[u32],
    options: &ForwardOptions,
) -> Result<Tensor> {
    let b = input_ids.len();
    let t = input_ids.first().map_or(0, Vec::len);
    let device = model.device();
    let flat: Vec<u32> = input_ids.iter().flatten().copied().collect();
    let ids = Tensor::from_vec(flat, (b, t), device)?;
    let hidden = model.hidden_states_with(&ids, None, options)?;
    let h = hidden.dim(D::Minus1)?;
    let selected = hidden
        .reshape((b * t, h))?
        .index_select(&Tensor::new(positions, device)?, 0)?;
    let logits = model.logits(&selected)?; // (n, vocab) f32
    Ok(ferrotune_model::kernels::cross_entropy::cross_entropy(
        &logits, targets,
    )?)
}

/// Forward pass and loss of a right-padded batch. `input_ids` and `labels` are rows of equal length.
pub fn batch_loss(
    model: &Llama,
    input_ids: &[Vec<u32>],
    labels: &[Vec<i64>],
    kind: LossKind,
    options: &ForwardOptions,
) -> Result<BatchLoss> {
    let norm = Normalization::of(labels, kind)?;
    batch_loss_normalized(model, input_ids, labels, &norm, options)
}

/// [`batch_loss`] of some rows of a larger batch, weighted as `norm` (that batch's) says.
pub fn batch_loss_normalized(
    model: &Llama,
    input_ids: &[Vec<u32>],
    labels: &[Vec<i64>],
    norm: &Normalization,
    options: &ForwardOptions,
) -> Result<BatchLoss> {
    let b = input_ids.len();
    let t = input_ids.first().map(Vec::len).unwrap_or(0);
    if b == 0 || t < 2 || labels.len() != b || labels.iter().any(|l| l.len() != t) {
        return Err(Error::Setting(
            "a batch needs rows of equal length ≥ 2 with labels of the same shape".into(),
        ));
    }
    // Position (row, t) predicts labels[row][t + 1].
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    let mut total = 0;
    for (r, row) in labels.iter().enumerate() {
        let weight = norm.weight(labelled(row).max(1));
        for (i, &label) in row[1..].iter().enumerate() {
            if label != IGNORE_INDEX {
                positions.push((r * t + i) as u32);
                targets.push(label as u32);
                weights.push(weight);
                total += 1;
            }
        }
    }
    if total == 0 {
        return Err(Error::Setting(
            "every label of these rows is masked\nhelp: check `dataset.mask_prompt_labels` and `tokenizer.max_length` (answers may be cut away)".into(),
        ));
    }
    let nll = token_nll(model, input_ids, &positions, &targets, options)?;
    let weights = Tensor::new(weights.as_slice(), model.device())?;
    let loss = (&nll * weights)?.sum_all()?;
    let token_nll = nll.detach().to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let mut rows = vec![(0.0, 0usize); b];
    for (&pos, &v) in positions.iter().zip(&token_nll) {
        let r = pos as usize / t;
        rows[r].0 += v;
        rows[r].1 += 1;
    }
    let nll_sum = token_nll.iter().sum();
    Ok(BatchLoss {
        loss,
        nll_sum,
        tokens: total,
        rows,
    })
}
