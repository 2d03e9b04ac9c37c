//! Linear layers of the decoder. A frozen weight `W` of shape `(out, in)` computes `y = x·Wᵀ (+ b)`, stored
//! dense in the compute dtype or quantized ([`crate::quant`]); a LoRA adapter may sit on top. Every projection
//! goes through this one type.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
use crate::kernels;
use crate::lora::LoraAdapter;
use crate::quant::{self, Quantization, QuantizedMatrix};
use crate::weights::Weights;

/// The frozen weight `(out, in)` of a linear layer.
#[derive(Debug, Clone)]
pub enum LinearWeight {
    /// A tensor in the compute dtype.
    Dense(Tensor),
    /// Quantized storage, dequantized tile by tile inside the matmul.
    Quantized(Arc<QuantizedMatrix>),
}

impl LinearWeight {
    /// `(out, in)`.
    pub fn dims(&self) -> Result<(usize, usize)> {
        match self {
            LinearWeight::Dense(w) => Ok(w.dims2()?),
            LinearWeight::Quantized(q) => Ok(q.dims()),
        }
    }

    /// The weight as a dense tensor of `dtype` (dequantized if quantized: for DoRA norms and merging, not for
    /// the per-step matmul).
    pub fn to_dense(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        match self {
            LinearWeight::Dense(w) => Ok(w.to_dtype(dtype)?),
            LinearWeight::Quantized(q) => {
                Ok(Tensor::from_vec(q.dequantize(), q.dims(), device)?.to_dtype(dtype)?)
            }
        }
    }

    /// Bytes the weight occupies in memory.
    pub fn storage_bytes(&self) -> usize {
        match self {
            LinearWeight::Dense(w) => w.elem_count() * w.dtype().size_in_bytes(),
            LinearWeight::Quantized(q) => q.storage_bytes(),
        }
    }
}

/// A linear projection `y = x·Wᵀ + b` over the last dimension of `x`, with an optional LoRA adapter.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor>,
    lora: Option<LoraAdapter>,
}

impl Linear {
    /// Wraps an existing dense weight `(out, in)` and optional bias `(out)`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight: LinearWeight::Dense(weight),
            bias,
            lora: None,
        }
    }

    /// Loads `{prefix}.weight` (and `{prefix}.bias` when `bias`) with shape `(out, in)`: dense in `dtype`, or
    /// quantized as `quantization` says (the f32 copy of this one tensor is dropped once quantized).
    pub fn load(
        weights: &Weights,
        prefix: &str,
        (out_dim, in_dim): (usize, usize),
        bias: bool,
        (dtype, quantization): (DType, Quantization),
        device: &Device,
    ) -> Result<Self> {
        let name = format!("{prefix}.weight");
        let weight = if quantization.format().is_some() {
            let dense = weights.load(&name, Some(&[out_dim, in_dim]), DType::F32, device)?;
            let values = dense.flatten_all()?.to_vec1::<f32>()?;
            drop(dense);
            LinearWeight::Quantized(Arc::new(QuantizedMatrix::quantize(
                &values,
                out_dim,
                in_dim,
                quantization,
            )))
        } else {
            LinearWeight::Dense(weights.load(&name, Some(&[out_dim, in_dim]), dtype, device)?)
        };
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

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The weight `(out, in)` (frozen, or a trained variable under full fine-tuning).
    pub fn weight(&self) -> &LinearWeight {
        &self.weight
    }

    /// The weight and the bias, to be replaced in place (full fine-tuning swaps them for trained variables).
    pub(crate) fn parts_mut(&mut self) -> (&mut LinearWeight, Option<&mut Tensor>) {
        (&mut self.weight, self.bias.as_mut())
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
        let mut out_dims = dims.to_vec();
        *out_dims
            .last_mut()
            .expect("linear input has at least one dimension") = self.weight.dims()?.0;
        if let (LinearWeight::Dense(w), Some(lora)) = (&self.weight, &self.lora) {
            let (a, b) = (lora.a.as_tensor(), lora.b.as_tensor());
            if lora.magnitude.is_none()
                && !lora.detached
                && kernels::lora_linear::applies(&x2, w, a, b)
            {
                let dropout = dropout_seed.map(|seed| kernels::lora_linear::Dropout {
                    p: lora.dropout,
                    seed,
                });
                let mut y = kernels::lora_linear::lora_linear(&x2, w, a, b, lora.scale, dropout)?;
                if let Some(bias) = &self.bias {
                    y = y.broadcast_add(bias)?;
                }
                return Ok(y.reshape(out_dims)?);
            }
        }
        let mut y = self.base_product(&x2)?;
        if let Some(lora) = &self.lora {
            y = (&y + lora.delta(&x2, &y, &self.weight, dropout_seed)?)?;
        }
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        Ok(y.reshape(out_dims)?)
    }

    /// `x2·Wᵀ` for `x2` `(rows, in)`: the frozen weight alone, without adapter or bias.
    fn base_product(&self, x2: &Tensor) -> Result<Tensor> {
        Ok(match &self.weight {
            LinearWeight::Dense(w) if kernels::frozen_matmul::applies(x2, w) => {
                kernels::frozen_matmul::frozen_matmul(x2, w)?
            }
            LinearWeight::Dense(w) => x2.matmul(&w.t()?)?,
            LinearWeight::Quantized(q) => {
                quant::quantized_matmul(&x2.to_dtype(DType::F32)?, q)?.to_dtype(x2.dtype())?
            }
        })
    }

    /// `x`: `(rows, in)` → `(rows, out)` with its own adapter per row (`None`: the weight alone), without dropout:
    /// one product with the shared weight for every row, then each run of rows with the same adapter adds that
    /// adapter's update (batched decoding over many adapters). The layer's own adapter is not used.
    pub fn forward_rows(&self, x: &Tensor, adapters: &[Option<&LoraAdapter>]) -> Result<Tensor> {
        let y = match &self.weight {
            LinearWeight::Dense(w) if kernels::small_m::applies(x, w) => {
                kernels::small_m::matmul_rows(x, w)?
            }
            _ => self.base_product(x)?,
        };
        let rows = y.dim(0)?;
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < rows {
            let same = |a: &Option<&LoraAdapter>, b: &Option<&LoraAdapter>| match (a, b) {
                (Some(a), Some(b)) => std::ptr::eq(*a, *b),
                (None, None) => true,
                _ => false,
            };
            let mut end = start + 1;
            while end < rows && same(&adapters[end], &adapters[start]) {
                end += 1;
            }
            let base = y.narrow(0, start, end - start)?;
            pieces.push(match adapters[start] {
                Some(lora) => {
                    let xs = x.narrow(0, start, end - start)?;
                    (&base + lora.delta(&xs, &base, &self.weight, None)?)?
                }
                None => base,
            });
            start = end;
        }
        let mut y = if pieces.len() == 1 {
            pieces.pop().expect("one piece")
        } else {
            Tensor::cat(&pieces, 0)?
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        Ok(y)
    }
}
