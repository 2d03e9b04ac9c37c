//! LoRA adapters (Hu et al., 2021) on frozen linear layers, with rsLoRA scaling and DoRA (Liu et al., 2024),
//! computed as PEFT's `LoraLayer` does so that adapters round-trip through PEFT's file format unchanged:
//!
//! `y = x·Wᵀ + b + s · dropout(x)·Aᵀ·Bᵀ`, `s = alpha / r` (rsLoRA: `alpha / √r`);
//! DoRA: `y = x·Wᵀ + b + (m/‖W + s·B·A‖ − 1) ⊙ x·Wᵀ + (m/‖W + s·B·A‖) ⊙ s · dropout(x)·Aᵀ·Bᵀ`, the row norm
//! detached from the graph as in the paper (§4.3) and PEFT.

use candle_core::{DType, Tensor, Var, D};
use rand::rngs::StdRng;
use rand::Rng;

use crate::error::Result;
use crate::layers::LinearWeight;

/// Which LoRA to build.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f32,
    pub use_rslora: bool,
    pub use_dora: bool,
    /// Module names (`q_proj`, …, `down_proj`); empty means all of them.
    pub target_modules: Vec<String>,
}

/// Every linear module name LoRA may target (the LM head is never adapted).
pub const LORA_TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

impl LoraSpec {
    /// Plain LoRA of rank `r` and scale numerator `alpha` on every linear module, without dropout.
    pub fn every_module(r: usize, alpha: f64) -> LoraSpec {
        LoraSpec {
            r,
            alpha,
            dropout: 0.0,
            use_rslora: false,
            use_dora: false,
            target_modules: Vec::new(),
        }
    }

    /// The scaling factor `s`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    /// Whether module `name` (e.g. `q_proj`) is adapted.
    pub fn targets(&self, name: &str) -> bool {
        if self.target_modules.is_empty() {
            LORA_TARGETS.contains(&name)
        } else {
            self.target_modules.iter().any(|t| t == name)
        }
    }
}

/// Trainable low-rank update of one linear layer.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    /// `(r, in)`, PEFT's `lora_A.weight`.
    pub a: Var,
    /// `(out, r)`, PEFT's `lora_B.weight`.
    pub b: Var,
    /// DoRA's magnitude `(out)`, PEFT's `lora_magnitude_vector`.
    pub magnitude: Option<Var>,
    pub scale: f64,
    pub dropout: f32,
    /// Compute with detached copies of A, B and m (inference): no autograd graph is recorded, so activations
    /// and KV-cache entries are freed as soon as they are dropped. See [`crate::Llama::for_inference`].
    pub detached: bool,
}

impl LoraAdapter {
    /// A fresh adapter initialised like PEFT: A Kaiming-uniform (a = √5, i.e. U(±1/√in)), B zero; DoRA's
    /// magnitude = the row norms of W.
    pub fn init(spec: &LoraSpec, weight: &LinearWeight, rng: &mut StdRng) -> Result<Self> {
        let (out_dim, in_dim) = weight.dims()?;
        let bound = 1.0 / (in_dim as f32).sqrt();
        let a: Vec<f32> = (0..spec.r * in_dim)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let device = match weight {
            LinearWeight::Dense(w) => w.device().clone(),
            LinearWeight::Quantized(_) => candle_core::Device::Cpu,
        };
        let a = Var::from_tensor(&Tensor::from_vec(a, (spec.r, in_dim), &device)?)?;
        let b = Var::zeros((out_dim, spec.r), DType::F32, &device)?;
        let magnitude = if spec.use_dora {
            Some(Var::from_tensor(&row_norms(
                &weight.to_dense(DType::F32, &device)?,
            )?)?)
        } else {
            None
        };
        Ok(Self {
            a,
            b,
            magnitude,
            scale: spec.scale(),
            dropout: spec.dropout,
            detached: false,
        })
    }

    /// `x`: `(rows, in)`, `base`: `x·Wᵀ` `(rows, out)` without bias; returns what to add to the layer output.
    pub fn delta(
        &self,
        x: &Tensor,
        base: &Tensor,
        weight: &LinearWeight,
        dropout_seed: Option<u64>,
    ) -> Result<Tensor> {
        let dtype = x.dtype();
        let x32 = x.to_dtype(DType::F32)?;
        let xd = match dropout_seed {
            Some(seed) if self.dropout > 0.0 => dropout(&x32, self.dropout, seed)?,
            _ => x32,
        };
        let param = |v: &Var| {
            if self.detached {
                v.as_tensor().detach()
            } else {
                v.as_tensor().clone()
            }
        };
        let (a, b) = (param(&self.a), param(&self.b));
        let lora = xd.matmul(&a.t()?)?.matmul(&b.t()?)?;
        let lora = (lora * self.scale)?;
        let out = match &self.magnitude {
            None => lora,
            Some(m) => {
                let w = weight.to_dense(DType::F32, x.device())?;
                let merged = (w + (b.matmul(&a)? * self.scale)?)?;
                let norm = row_norms(&merged)?.detach();
                let factor = param(m).broadcast_div(&norm)?; // (out)
                let base32 = base.to_dtype(DType::F32)?;
                let scaled_base = base32.broadcast_mul(&(&factor - 1.0)?)?;
                (scaled_base + lora.broadcast_mul(&factor)?)?
            }
        };
        Ok(out.to_dtype(dtype)?)
    }

    /// The dense update `s·B·A` `(out, in)` (for merging into W).
    pub fn merged_delta(&self) -> Result<Tensor> {
        Ok((self.b.matmul(self.a.as_tensor())? * self.scale)?)
    }
}

/// `W` with a LoRA update merged in, as PEFT's `merge_and_unload` computes it (all f32): `W + s·B·A`, and for
/// DoRA `m / ‖W + s·B·A‖ ⊙ (W + s·B·A)` with the L2 norm of each output row. `w` `(out, in)`, `a` `(r, in)`,
/// `b` `(out, r)`, `magnitude` `(out)`.
pub fn merge_weight(
    w: &Tensor,
    a: &Tensor,
    b: &Tensor,
    magnitude: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let f32 = |t: &Tensor| t.to_dtype(DType::F32);
    let merged = (f32(w)? + (f32(b)?.matmul(&f32(a)?)? * scale)?)?;
    Ok(match magnitude {
        None => merged,
        Some(m) => {
            let factor = f32(m)?.broadcast_div(&row_norms(&merged)?)?;
            merged.broadcast_mul(&factor.unsqueeze(1)?)?
        }
    })
}

/// L2 norm of each row of `w` `(out, in)` → `(out)`.
fn row_norms(w: &Tensor) -> Result<Tensor> {
    Ok(w.sqr()?.sum(D::Minus1)?.sqrt()?)
}

/// Inverted dropout with a mask drawn from `seed` (reproducible, so a resumed run draws the same masks; the
/// same draws as the fused LoRA layer's, [`crate::kernels::lora_linear::dropout_mask`]).
pub fn dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    let ones = vec![1f32; x.elem_count()];
    let mask = crate::kernels::lora_linear::apply_dropout(&ones, p, seed);
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
    Ok((x * mask)?)
}
