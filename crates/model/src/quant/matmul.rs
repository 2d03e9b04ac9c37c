//! `x·Wᵀ` against a quantized frozen `W`, dequantizing one tile at a time: the forward pass walks tiles of W's
//! rows (output features), the backward pass (input gradient `g·W` only; W never trains) walks 64-column
//! blocks. Tiles run in parallel, each writing its own columns of the result, so no f32 copy of W ever exists.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{QuantizedMatrix, BLOCK};
use crate::error::Result;
use crate::kernels::{contiguous_f32, gemm_f32, SharedMut};

/// Number of tiles to split `len` units into: a few per thread, each at least `min` units.
fn tile_size(len: usize, min: usize, multiple: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let size = len.div_ceil(4 * threads).max(min);
    size.div_ceil(multiple) * multiple
}

/// `dst (m×n) = x (m×k) · Wᵀ`.
fn forward(w: &QuantizedMatrix, x: &[f32], m: usize, dst: &mut [f32]) {
    let (n, k) = w.dims();
    let tile = tile_size(n, 16, 8);
    let out = SharedMut(dst.as_mut_ptr());
    (0..n.div_ceil(tile))
        .into_par_iter()
        .for_each_init(Vec::new, |buf: &mut Vec<f32>, t| {
            let (r0, r1) = (t * tile, ((t + 1) * tile).min(n));
            buf.resize((r1 - r0) * k, 0.0);
            w.dequantize_rows(r0, r1, buf);
            // SAFETY: x is m×k row-major, buf is (r1-r0)×k row-major read as its transpose (element (p, j) at
            // j·k + p), and the destination is columns r0..r1 of the m×n row-major dst, which only this task
            // writes.
            unsafe {
                gemm_f32(
                    (m, r1 - r0, k),
                    out.get().add(r0),
                    n,
                    x.as_ptr(),
                    buf.as_ptr(),
                    (1, k),
                    gemm::Parallelism::None,
                );
            }
        });
}

/// `dst (m×k) = g (m×n) · W`.
fn input_grad(w: &QuantizedMatrix, g: &[f32], m: usize, dst: &mut [f32]) {
    let (n, k) = w.dims();
    let tile = tile_size(k, BLOCK, BLOCK);
    let out = SharedMut(dst.as_mut_ptr());
    (0..k.div_ceil(tile))
        .into_par_iter()
        .for_each_init(Vec::new, |buf: &mut Vec<f32>, t| {
            let (c0, c1) = (t * tile, ((t + 1) * tile).min(k));
            let width = c1 - c0;
            buf.resize(n * width, 0.0);
            w.dequantize_cols(c0, c1, buf);
            // SAFETY: g is m×n row-major, buf is n×width row-major, and the destination is columns c0..c1 of
            // the m×k row-major dst, which only this task writes.
            unsafe {
                gemm_f32(
                    (m, width, n),
                    out.get().add(c0),
                    k,
                    g.as_ptr(),
                    buf.as_ptr(),
                    (width, 1),
                    gemm::Parallelism::None,
                );
            }
        });
}

struct QuantizedMatmul(Arc<QuantizedMatrix>);

impl CustomOp1 for QuantizedMatmul {
    fn name(&self) -> &'static str {
        "quantized-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = layout.shape().dims2()?;
        let (n, wk) = self.0.dims();
        if k != wk {
            candle_core::bail!("quantized-matmul: input has {k} features, the weight expects {wk}")
        }
        let x = contiguous_f32(storage, layout, "quantized-matmul", "the input")?;
        let mut dst = vec![0f32; m * n];
        forward(&self.0, x, m, &mut dst);
        Ok((CpuStorage::F32(dst), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let op = QuantizedMatmulInputGrad(self.0.clone());
        Ok(Some(
            grad.contiguous()?.apply_op1_arc(Arc::new(Box::new(op)))?,
        ))
    }
}

/// `g·W`, the backward of [`QuantizedMatmul`] (itself never differentiated: no second-order training).
struct QuantizedMatmulInputGrad(Arc<QuantizedMatrix>);

impl CustomOp1 for QuantizedMatmulInputGrad {
    fn name(&self) -> &'static str {
        "quantized-matmul-input-grad"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, n) = layout.shape().dims2()?;
        let (wn, k) = self.0.dims();
        if n != wn {
            candle_core::bail!(
                "quantized-matmul backward: gradient has {n} features, the weight has {wn} rows"
            )
        }
        let g = contiguous_f32(storage, layout, "quantized-matmul backward", "the gradient")?;
        let mut dst = vec![0f32; m * k];
        input_grad(&self.0, g, m, &mut dst);
        Ok((CpuStorage::F32(dst), Shape::from((m, k))))
    }
}

/// `x·Wᵀ` with `x`: `(rows, in)` f32 and quantized `W`: `(out, in)` → `(rows, out)`; gradients flow to `x` only.
pub fn quantized_matmul(x: &Tensor, weight: &Arc<QuantizedMatrix>) -> Result<Tensor> {
    let op = QuantizedMatmul(weight.clone());
    Ok(x.contiguous()?.apply_op1_arc(Arc::new(Box::new(op)))?)
}

/// The reference: candle's matmul against the dequantized weight.
pub fn quantized_matmul_reference(x: &Tensor, weight: &QuantizedMatrix) -> Result<Tensor> {
    let (n, k) = weight.dims();
    let w = Tensor::from_vec(weight.dequantize(), (n, k), x.device())?;
    Ok(x.matmul(&w.t()?)?)
}
