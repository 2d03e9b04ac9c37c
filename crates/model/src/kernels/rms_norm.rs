//! RMSNorm with a backward pass: `y = x · r · w`, `r = 1/√(mean(x²) + ε)` per row.
//! candle's fused `rms_norm` has no backward, and the composition (square, mean, add, sqrt, divide, multiply)
//! keeps four activation-sized tensors per norm alive for the backward. These ops keep nothing but their inputs
//! and compute `dx = r·(w⊙g) − x·r³·mean(w⊙g⊙x)`; [`rms_norm`] (frozen weight, as under LoRA) stops there,
//! [`rms_norm_trainable`] (full fine-tuning) also returns `dw = Σ_rows g⊙x·r`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;

struct RmsNorm {
    /// `(hidden)` f32.
    weight: Vec<f32>,
    eps: f32,
}

/// Rows per parallel task: enough work to amortise the task, few enough to balance two cores.
const ROWS_PER_TASK: usize = 16;

fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let mean = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
    1.0 / (mean + eps).sqrt()
}

/// `y = x·r·w` row by row.
fn forward(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let n = weight.len();
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(x.par_chunks(n * ROWS_PER_TASK))
        .for_each(|(dst, src)| {
            for (d, s) in dst.chunks_exact_mut(n).zip(src.chunks_exact(n)) {
                let r = inv_rms(s, eps);
                for ((d, &s), &w) in d.iter_mut().zip(s).zip(weight) {
                    *d = s * r * w;
                }
            }
        });
    out
}

/// The input gradient `r·(w⊙g) − x·r³·mean(w⊙g⊙x)` row by row.
fn input_grad(x: &[f32], g: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let n = weight.len();
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(
            x.par_chunks(n * ROWS_PER_TASK)
                .zip(g.par_chunks(n * ROWS_PER_TASK)),
        )
        .for_each(|(dst, (xs, gs))| {
            for ((d, x), g) in dst
                .chunks_exact_mut(n)
                .zip(xs.chunks_exact(n))
                .zip(gs.chunks_exact(n))
            {
                let r = inv_rms(x, eps);
                let dot: f32 = x
                    .iter()
                    .zip(g)
                    .zip(weight)
                    .map(|((x, g), w)| x * g * w)
                    .sum();
                let k = r * r * r * dot / n as f32;
                for (((d, &x), &g), &w) in d.iter_mut().zip(x).zip(g).zip(weight) {
                    *d = r * w * g - k * x;
                }
            }
        });
    dx
}

/// The weight gradient `Σ_rows g⊙x·r`: a partial sum per task, added in task order (deterministic).
fn weight_grad(x: &[f32], g: &[f32], n: usize, eps: f32) -> Vec<f32> {
    let partials: Vec<Vec<f32>> = x
        .par_chunks(n * ROWS_PER_TASK)
        .zip(g.par_chunks(n * ROWS_PER_TASK))
        .map(|(xs, gs)| {
            let mut acc = vec![0f32; n];
            for (x, g) in xs.chunks_exact(n).zip(gs.chunks_exact(n)) {
                let r = inv_rms(x, eps);
                for ((a, &x), &g) in acc.iter_mut().zip(x).zip(g) {
                    *a += g * x * r;
                }
            }
            acc
        })
        .collect();
    let mut dw = vec![0f32; n];
    for partial in partials {
        for (d, p) in dw.iter_mut().zip(partial) {
            *d += p;
        }
    }
    dw
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = super::contiguous_f32(storage, layout, "rms-norm", "the input")?;
        let n = self.weight.len();
        if layout.shape().dims().last() != Some(&n) {
            candle_core::bail!("rms-norm: the input's last dimension must be {n}")
        }
        let out = forward(x, &self.weight, self.eps);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let x = arg.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let dx = input_grad(&x, &g, &self.weight, self.eps);
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// RMSNorm of an input with a trained weight: gradients flow to both.
struct RmsNormTrainable {
    eps: f32,
}

impl CustomOp2 for RmsNormTrainable {
    fn name(&self) -> &'static str {
        "rms-norm-trainable"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let op = "rms-norm";
        let x = super::contiguous_f32(x, x_layout, op, "the input")?;
        let w = super::contiguous_f32(w, w_layout, op, "the weight")?;
        let n = w.len();
        if x_layout.shape().dims().last() != Some(&n) {
            candle_core::bail!("rms-norm: the input's last dimension must be {n}")
        }
        Ok((
            CpuStorage::F32(forward(x, w, self.eps)),
            x_layout.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let xs = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let ws = w.flatten_all()?.to_vec1::<f32>()?;
        let dx = if x.track_op() {
            let dx = input_grad(&xs, &g, &ws, self.eps);
            Some(Tensor::from_vec(dx, x.shape(), x.device())?)
        } else {
            None
        };
        let dw = weight_grad(&xs, &g, ws.len(), self.eps);
        Ok((dx, Some(Tensor::from_vec(dw, w.shape(), w.device())?)))
    }
}

/// Whether the kernel applies: a tracked f32 CPU input and an untracked f32 weight.
pub fn applies(x: &Tensor, weight: &Tensor) -> bool {
    x.track_op()
        && !weight.track_op()
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && x.device().is_cpu()
}

/// RMSNorm of `x` over its last dimension with the frozen `weight`; gradients flow to `x`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let op = RmsNorm {
        weight: weight.flatten_all()?.to_vec1::<f32>()?,
        eps: eps as f32,
    };
    Ok(x.contiguous()?
        .apply_op1_arc(std::sync::Arc::new(Box::new(op)))?)
}

/// Whether [`rms_norm_trainable`] applies: an f32 CPU input and a trained (tracked) f32 weight.
pub fn applies_trainable(x: &Tensor, weight: &Tensor) -> bool {
    weight.track_op()
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && x.device().is_cpu()
        && weight.device().is_cpu()
}

/// RMSNorm of `x` over its last dimension with a trained `weight`; gradients flow to `x` and the weight.
pub fn rms_norm_trainable(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let op = RmsNormTrainable { eps: eps as f32 };
    Ok(x.contiguous()?
        .apply_op2_arc(&weight.contiguous()?, std::sync::Arc::new(Box::new(op)))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn values_and_gradient_match_the_composed_norm() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, 24, &dev).unwrap();
        let x = Var::from_tensor(&Tensor::randn(0f32, 2.0, (3, 19, 24), &dev).unwrap()).unwrap();
        crate::kernels::assert_matches_reference(
            |x| rms_norm(x, &w, 1e-5),
            |x| crate::ops::rms_norm_reference(x, &w, 1e-5),
            &x,
            (1e-5, 1e-4),
        );
    }

    #[test]
    fn the_trainable_norm_matches_the_composed_norm_in_both_gradients() {
        let dev = Device::Cpu;
        // 3·37 rows: several parallel tasks and a partial one.
        let x = Tensor::randn(0f32, 2.0, (3, 37, 24), &dev).unwrap();
        let w = Var::from_tensor(&Tensor::randn(1f32, 0.3, 24, &dev).unwrap()).unwrap();
        let xv = Var::from_tensor(&x).unwrap();
        let coef = Tensor::randn(0f32, 1.0, x.shape(), &dev).unwrap();
        let grads = |y: Tensor| (y * &coef).unwrap().sum_all().unwrap().backward().unwrap();
        let eps = 1e-5;
        let a = rms_norm_trainable(xv.as_tensor(), w.as_tensor(), eps).unwrap();
        let b = crate::ops::rms_norm_reference(xv.as_tensor(), w.as_tensor(), eps).unwrap();
        assert!(max_diff(&a, &b) < 1e-5);
        let (ga, gb) = (grads(a), grads(b));
        for t in [xv.as_tensor(), w.as_tensor()] {
            let d = max_diff(ga.get(t).unwrap(), gb.get(t).unwrap());
            assert!(d < 1e-4, "gradient differs by {d}");
        }
        // An untracked input (a frozen embedding below): the weight still gets its gradient.
        let y = rms_norm_trainable(&x, w.as_tensor(), eps).unwrap();
        let g = grads(y);
        assert!(g.get(&x).is_none());
        assert!(
            max_diff(
                g.get(w.as_tensor()).unwrap(),
                gb.get(w.as_tensor()).unwrap()
            ) < 1e-4
        );
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    }
}
