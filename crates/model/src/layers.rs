//! Linear layers of the decoder. A frozen weight `W` of shape `(out, in)` computes `y = x·Wᵀ (+ b)`; later
//! issues attach LoRA adapters and quantized storage here, so every projection goes through this one type.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
use crate::kernels;
use crate::lora::LoraAdapter;
use crate::weights::Weights;

/// A linear projection `y = x·Wᵀ + b` over the last dimension of `x`, with an optional LoRA adapter.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    lora: Option<LoraAdapter>,
}

impl Linear {
    /// Wraps an existing weight `(out, in)` and optional bias `(out)`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            lora: None,
        }
    }

    /// Loads `{prefix}.weight` (and `{prefix}.bias` when `bias`) with shape `(out, in)`.
    pub fn load(
        weights: &Weights,
        prefix: &str,
        (out_dim, in_dim): (usize, usize),
        bias: bool,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let weight = weights.load(
            &format!("{prefix}.weight"),
            Some(&[out_dim, in_dim]),
            dtype,
            device,
        )?;
        let bias = if bias {
            Some(weights.load(&format!("{prefix}.bias"), Some(&[out_dim]), dtype, device)?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            lora: None,
        })
    }

    /// The LoRA adapter, if any.
    pub fn lora(&self) -> Option<&LoraAdapter> {
        self.lora.as_ref()
    }

    /// Attaches (or replaces) the LoRA adapter.
    pub fn set_lora(&mut self, lora: Option<LoraAdapter>) {
        self.lora = lora;
    }

    /// The weight `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `x`: `(..., in)` → `(..., out)`, without dropout.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, None)
    }

    /// `x`: `(..., in)` → `(..., out)`; `dropout_seed` enables the adapter's dropout (training).
    pub fn forward_t(&self, x: &Tensor, dropout_seed: Option<u64>) -> Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim;
        let x2 = x.reshape((rows, in_dim))?;
        let mut y = if kernels::frozen_matmul::applies(&x2, &self.weight) {
            kernels::frozen_matmul::frozen_matmul(&x2, &self.weight)?
        } else {
            x2.matmul(&self.weight.t()?)?
        };
        if let Some(lora) = &self.lora {
            y = (&y + lora.delta(&x2, &y, &self.weight, dropout_seed)?)?;
        }
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        let mut out_dims = dims.to_vec();
        *out_dims
            .last_mut()
            .expect("linear input has at least one dimension") = self.weight.dim(0)?;
        Ok(y.reshape(out_dims)?)
    }
}
