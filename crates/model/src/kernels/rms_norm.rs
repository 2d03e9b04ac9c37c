//! RMSNorm with a frozen weight and a backward pass: `y = x · r · w`, `r = 1/√(mean(x²) + ε)` per row.
//! candle's fused `rms_norm` has no backward, and the composition (square, mean, add, sqrt, divide, multiply)
//! keeps four activation-sized tensors per norm alive for the backward. This op keeps nothing but its input and
//! computes `dx = r·(w⊙g) − x·r³·mean(w⊙g⊙x)`; the weight gets no gradient (norms are frozen under LoRA).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;

struct RmsNorm {
    /// `(hidden)` f32.
    weight: Vec<f32>,
    eps: f32,
}

/// Rows per parallel task: enough work to amortise the task, few enough to balance two cores.
const ROWS_PER_TASK: usize = 16;

impl RmsNorm {
    fn inv_rms(&self, row: &[f32]) -> f32 {
        let mean = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
        1.0 / (mean + self.eps).sqrt()
    }
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
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n * ROWS_PER_TASK)
            .zip(x.par_chunks(n * ROWS_PER_TASK))
            .for_each(|(dst, src)| {
                for (d, s) in dst.chunks_exact_mut(n).zip(src.chunks_exact(n)) {
                    let r = self.inv_rms(s);
                    for ((d, &s), &w) in d.iter_mut().zip(s).zip(&self.weight) {
                        *d = s * r * w;
                    }
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let n = self.weight.len();
        let x = arg.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
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
                    let r = self.inv_rms(x);
                    let dot: f32 = x
                        .iter()
                        .zip(g)
                        .zip(&self.weight)
                        .map(|((x, g), w)| x * g * w)
                        .sum();
                    let k = r * r * r * dot / n as f32;
                    for (((d, &x), &g), &w) in d.iter_mut().zip(x).zip(g).zip(&self.weight) {
                        *d = r * w * g - k * x;
                    }
                }
            });
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
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
}
