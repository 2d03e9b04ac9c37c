//! Key/value cache for incremental decoding.

use candle_core::Tensor;

use crate::error::Result;

/// Per-layer keys and values seen so far, each `(batch, kv_heads, seq, head_dim)`.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache for `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map(|(k, _)| k.dims()[2])
            .unwrap_or(0)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `k`, `v` of layer `layer` and returns the full keys and values.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let entry = &mut self.layers[layer];
        let (k, v) = match entry.take() {
            None => (k.contiguous()?, v.contiguous()?),
            Some((pk, pv)) => (Tensor::cat(&[&pk, k], 2)?, Tensor::cat(&[&pv, v], 2)?),
        };
        *entry = Some((k.clone(), v.clone()));
        Ok((k, v))
    }

    /// Reorders the batch rows (beam search): row `i` becomes old row `indices[i]`.
    pub fn reorder(&mut self, indices: &Tensor) -> Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(indices, 0)?;
            *v = v.index_select(indices, 0)?;
        }
        Ok(())
    }

    /// Drops everything cached.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
    }
}
