//! `x·Wᵀ` for a frozen weight `W`: candle's matmul backward always computes both operand gradients, including a
//! `W`-shaped gradient for weights that never train (for a LoRA step, one extra matmul and one weight-sized
//! allocation per linear layer, the LM head's 49152×576 included). This op's backward returns only the input
//! gradient `g·W`.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor};

use crate::error::Result;

struct FrozenMatmul {
    /// `(out, in)`, f32, contiguous, on the CPU.
    weight: Tensor,
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = layout.shape().dims2()?;
        let (n, wk) = self.weight.dims2()?;
        if wk != k {
            candle_core::bail!("frozen-matmul: input has {k} features, the weight expects {wk}")
        }
        let CpuStorage::F32(x) = storage else {
            candle_core::bail!("frozen-matmul: the input must be f32")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("frozen-matmul: the input must be contiguous")
        };
        let x = &x[start..end];
        let (w_storage, w_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(CpuStorage::F32(w)) = &*w_storage else {
            candle_core::bail!("frozen-matmul: the weight must be an f32 CPU tensor")
        };
        let Some((ws, we)) = w_layout.contiguous_offsets() else {
            candle_core::bail!("frozen-matmul: the weight must be contiguous")
        };
        let w = &w[ws..we];
        let mut dst = vec![0f32; m * n];
        // SAFETY: the pointers cover m×k (x), n×k (w) and m×n (dst) f32 values with the strides given:
        // x row-major (row stride k), Wᵀ read from W row-major (element (p, j) at j·k + p), dst row-major.
        unsafe {
            super::gemm_f32(
                (m, n, k),
                dst.as_mut_ptr(),
                n,
                x.as_ptr(),
                w.as_ptr(),
                (1, k),
                gemm::Parallelism::Rayon(candle_core::utils::get_num_threads()),
            );
        }
        Ok((CpuStorage::F32(dst), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.weight)?))
    }
}

/// Whether [`frozen_matmul`] applies: a tracked f32 CPU input against an untracked f32 weight.
pub fn applies(x: &Tensor, weight: &Tensor) -> bool {
    x.track_op()
        && !weight.track_op()
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && x.device().is_cpu()
        && weight.is_contiguous()
}

/// `x·Wᵀ` with `x`: `(rows, in)` and frozen `W`: `(out, in)` → `(rows, out)`; gradients flow to `x` only.
pub fn frozen_matmul(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let op = FrozenMatmul {
        weight: weight.clone(),
    };
    Ok(x.contiguous()?
        .apply_op1_arc(std::sync::Arc::new(Box::new(op)))?)
}

/// The reference: candle's matmul (which also computes a gradient for `W`).
pub fn frozen_matmul_reference(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&weight.t()?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn values_and_input_gradient_match_the_reference() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (37, 19), &dev).unwrap();
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (11, 19), &dev).unwrap()).unwrap();
        crate::kernels::assert_matches_reference(
            |x| frozen_matmul(x, &w),
            |x| frozen_matmul_reference(x, &w),
            &x,
            (1e-4, 1e-4),
        );
    }
}
