//! Building blocks of the decoder that pick, per call, between candle's fused inference kernels and compositions
//! of plain ops whose gradients candle tracks.
//!
//! candle's fused `rms_norm`, `softmax_last_dim` and `rope` have no backward: used in a training graph they drop
//! gradients silently. Each function here uses the fused kernel only when its input tracks no gradient
//! ([`Tensor::track_op`] is false), and the composed reference otherwise, so the same forward serves inference and
//! training (or, where the composition wastes memory, a kernel of ours with a backward: [`crate::kernels`]). The
//! `*_reference` functions are the composed versions, tested against the fused ones.

use candle_core::{DType, Tensor, D};

use crate::error::Result;

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * weight`, computed in f32.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if crate::kernels::rms_norm::applies(x, weight) {
        return crate::kernels::rms_norm::rms_norm(x, weight, eps);
    }
    if crate::kernels::rms_norm::applies_trainable(x, weight) {
        return crate::kernels::rms_norm::rms_norm_trainable(x, weight, eps);
    }
    if x.track_op() || weight.track_op() {
        return rms_norm_reference(x, weight, eps);
    }
    Ok(candle_nn::ops::rms_norm(
        &x.contiguous()?,
        weight,
        eps as f32,
    )?)
}

/// [`rms_norm`] from plain ops (gradients flow).
pub fn rms_norm_reference(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let var = x32.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = x32.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)?;
    Ok(normed.broadcast_mul(weight)?)
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.track_op() {
        if x.dtype() == DType::F32 && x.device().is_cpu() {
            return crate::kernels::softmax::softmax_last_dim(x);
        }
        return softmax_reference(x);
    }
    Ok(candle_nn::ops::softmax_last_dim(&x.contiguous()?)?)
}

/// [`softmax_last_dim`] from plain ops (gradients flow).
pub fn softmax_reference(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&sum)?)
}

/// Rotary embedding, HF layout: `x * cos + rotate_half(x) * sin`.
///
/// `x`: `(batch, heads, seq, head_dim)`; `cos`, `sin`: `(seq, head_dim)` (both halves equal).
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if x.track_op() {
        return apply_rope_reference(x, cos, sin);
    }
    let half = cos.dim(1)? / 2;
    let cos = cos.narrow(1, 0, half)?.contiguous()?;
    let sin = sin.narrow(1, 0, half)?.contiguous()?;
    Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin)?)
}

/// [`apply_rope`] from plain ops (gradients flow).
pub fn apply_rope_reference(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    Ok((x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
}

/// SiLU-gated product `silu(gate) * up`.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if crate::kernels::swiglu::applies(gate, up) {
        return crate::kernels::swiglu::swiglu(gate, up);
    }
    swiglu_reference(gate, up)
}

/// [`swiglu`] from plain ops (gradients flow).
pub fn swiglu_reference(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    Ok((candle_nn::ops::silu(gate)? * up)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn fused_and_composed_agree() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 5, 8), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, 8, &dev).unwrap();
        let a = rms_norm(&x, &w, 1e-5).unwrap();
        let b = rms_norm_reference(&x, &w, 1e-5).unwrap();
        assert!(max_diff(&a, &b) < 1e-5);
        let a = softmax_last_dim(&x).unwrap();
        let b = softmax_reference(&x).unwrap();
        assert!(max_diff(&a, &b) < 1e-6);
        let ang = Tensor::randn(0f32, 1.0, (5, 4), &dev).unwrap();
        let ang = Tensor::cat(&[&ang, &ang], 1).unwrap();
        let (cos, sin) = (ang.cos().unwrap(), ang.sin().unwrap());
        let a = apply_rope(&x, &cos, &sin).unwrap();
        let b = apply_rope_reference(&x, &cos, &sin).unwrap();
        assert!(max_diff(&a, &b) < 1e-5);
    }

    #[test]
    fn tracked_inputs_get_gradients() {
        let dev = Device::Cpu;
        let x = Var::new(&[[1f32, 2.0, 3.0, 4.0]], &dev).unwrap();
        let w = Tensor::ones(4, DType::F32, &dev).unwrap();
        let y = softmax_last_dim(&rms_norm(x.as_tensor(), &w, 1e-6).unwrap()).unwrap();
        let loss = y.narrow(1, 3, 1).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let g = grads
            .get(x.as_tensor())
            .expect("gradient reaches the input");
        assert!(
            g.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        );
    }
}
