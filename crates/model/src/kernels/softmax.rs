//! Softmax over the last dimension with a backward pass. candle's fused `softmax_last_dim` has none (it drops
//! gradients), and the composition of max/sub/exp/sum/div keeps five attention-sized tensors per layer alive for
//! the backward. This op keeps only its output `y` and computes `dx = y ⊙ (g − Σ g⊙y)`.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, D};

use crate::error::Result;

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax-last-dim-bwd"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(x) = storage else {
            candle_core::bail!("softmax: the input must be f32")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("softmax: the input must be contiguous")
        };
        let x = &x[start..end];
        let n = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; x.len()];
        for (row, dst) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (d, &v) in dst.iter_mut().zip(row) {
                let e = (v - max).exp();
                *d = e;
                sum += e;
            }
            let inv = 1.0 / sum;
            dst.iter_mut().for_each(|d| *d *= inv);
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let dot = (grad * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some((grad.broadcast_sub(&dot)? * res)?))
    }
}

/// Softmax over the last dimension of an f32 CPU tensor, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?
        .apply_op1_arc(std::sync::Arc::new(Box::new(Softmax)))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn values_and_gradient_match_the_composed_softmax() {
        let x = Tensor::randn(0f32, 3.0, (3, 5, 17), &Device::Cpu).unwrap();
        let x = Var::from_tensor(&x).unwrap();
        crate::kernels::assert_matches_reference(
            softmax_last_dim,
            crate::ops::softmax_reference,
            &x,
            (1e-6, 1e-5),
        );
    }
}
