//! What a forward pass is asked to do besides computing: dropout seeds, NEFTune noise, sample packing and
//! gradient checkpointing ([`ForwardOptions`]), and where packed samples lie ([`Packing`]).

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// Options of a training forward pass.
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// Seed of this step's adapter-dropout masks; `None` disables dropout (inference).
    pub dropout_seed: Option<u64>,
    /// Dropout on each attention and MLP output before its residual add (H2O's `intermediate_dropout`);
    /// applied only when `dropout_seed` is set.
    pub intermediate_dropout: f32,
    /// NEFTune (Jain et al., 2023): uniform noise of scale `alpha / √(seq·hidden)` on the embeddings.
    pub neftune: Option<(f64, u64)>,
    /// Sample packing: several samples per row, attending only within themselves, positions restarting at 0.
    pub packing: Option<Packing>,
    /// Gradient checkpointing: keep only each layer's input and recompute the layer in the backward pass; the
    /// gradients of the layers' trained variables (adapters, backbone weights under full fine-tuning) computed
    /// there are collected in this store (add them to the backward's).
    pub checkpointing: Option<super::checkpointing::CheckpointGrads>,
}

/// Where the samples of packed rows lie: per row and position, the position id inside its sample and the
/// sample's sequence id (0 for padding).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Packing {
    pub position_ids: Vec<Vec<u32>>,
    pub sequence_ids: Vec<Vec<u32>>,
}

impl Packing {
    /// Additive attention bias `(batch, 1, n_rep·t, t)`: causal within a sample, −∞ across samples (padding
    /// attends to itself only, so no row is all −∞).
    pub(crate) fn mask(&self, n_rep: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        let b = self.sequence_ids.len();
        let t = self.sequence_ids.first().map(Vec::len).unwrap_or(0);
        let mut data = Vec::with_capacity(b * n_rep * t * t);
        for seq in &self.sequence_ids {
            for _ in 0..n_rep {
                for i in 0..t {
                    data.extend((0..t).map(|j| {
                        let visible = if seq[i] == 0 {
                            i == j
                        } else {
                            j <= i && seq[j] == seq[i]
                        };
                        if visible {
                            0.0f32
                        } else {
                            f32::NEG_INFINITY
                        }
                    }));
                }
            }
        }
        Ok(Tensor::from_vec(data, (b, 1, n_rep * t, t), device)?.to_dtype(dtype)?)
    }
}
