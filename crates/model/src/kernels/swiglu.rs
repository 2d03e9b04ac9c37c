//! The SwiGLU gate `silu(gate) ⊙ up` with a backward pass: one pass forward, one pass backward computing both
//! gradients (`d up = g ⊙ silu(gate)`, `d gate = g ⊙ up ⊙ σ(gate)·(1 + gate·(1 − σ(gate)))`), where the
//! composition keeps `silu(gate)` besides its inputs and runs five elementwise ops backward.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;

struct SwiGlu;

/// Elements per parallel task.
const CHUNK: usize = 16 * 1024;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu-bwd"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if gate_layout.shape() != up_layout.shape() {
            candle_core::bail!("swiglu: gate and up differ in shape")
        }
        let (gate, up) = (
            super::contiguous_f32(gate, gate_layout, "swiglu", "gate")?,
            super::contiguous_f32(up, up_layout, "swiglu", "up")?,
        );
        let mut out = vec![0f32; gate.len()];
        out.par_chunks_mut(CHUNK)
            .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
            .for_each(|(dst, (gate, up))| {
                for ((d, &a), &u) in dst.iter_mut().zip(gate).zip(up) {
                    *d = a * sigmoid(a) * u;
                }
            });
        Ok((CpuStorage::F32(out), gate_layout.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let a = gate.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let u = up.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut d_gate = vec![0f32; a.len()];
        let mut d_up = vec![0f32; a.len()];
        d_gate
            .par_chunks_mut(CHUNK)
            .zip(d_up.par_chunks_mut(CHUNK))
            .zip(
                a.par_chunks(CHUNK)
                    .zip(u.par_chunks(CHUNK))
                    .zip(g.par_chunks(CHUNK)),
            )
            .for_each(|((dg, du), ((a, u), g))| {
                for i in 0..a.len() {
                    let s = sigmoid(a[i]);
                    du[i] = g[i] * a[i] * s;
                    dg[i] = g[i] * u[i] * s * (1.0 + a[i] * (1.0 - s));
                }
            });
        let (shape, device) = (gate.shape(), gate.device());
        Ok((
            Some(Tensor::from_vec(d_gate, shape, device)?),
            Some(Tensor::from_vec(d_up, shape, device)?),
        ))
    }
}

/// Whether the kernel applies: f32 CPU tensors of one shape, at least one tracked.
pub fn applies(gate: &Tensor, up: &Tensor) -> bool {
    (gate.track_op() || up.track_op())
        && gate.dtype() == DType::F32
        && up.dtype() == DType::F32
        && gate.device().is_cpu()
        && gate.shape() == up.shape()
}

/// `silu(gate) ⊙ up`, differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    Ok(gate
        .contiguous()?
        .apply_op2_arc(&up.contiguous()?, std::sync::Arc::new(Box::new(SwiGlu)))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn values_and_gradients_match_the_composition() {
        let dev = Device::Cpu;
        let gate = Var::from_tensor(&Tensor::randn(0f32, 3.0, (5, 33), &dev).unwrap()).unwrap();
        let up = Tensor::randn(0f32, 1.0, (5, 33), &dev).unwrap();
        // Gradient with respect to the gate (up fixed) …
        crate::kernels::assert_matches_reference(
            |g| swiglu(g, &up),
            |g| crate::ops::swiglu_reference(g, &up),
            &gate,
            (1e-5, 1e-4),
        );
        // … and with respect to up (gate fixed).
        let up = Var::from_tensor(&up).unwrap();
        let gate = gate.as_tensor().detach();
        crate::kernels::assert_matches_reference(
            |u| swiglu(&gate, u),
            |u| crate::ops::swiglu_reference(&gate, u),
            &up,
            (1e-5, 1e-4),
        );
    }
}
