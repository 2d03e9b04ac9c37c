//! A LoRA linear layer as one op: `y = x·Wᵀ + s·(dropout(x)·Aᵀ)·Bᵀ` with the frozen `W` and the trainable `A`
//! `(r, in)` and `B` `(out, r)`.
//!
//! Composed from candle ops this is six graph nodes per projection (frozen matmul, dropout mask and product,
//! two adapter matmuls, scale, add), each of which candle's backward answers with fresh zero-filled gradient
//! buffers — also for the constant dropout mask — and the `(rows, in)` dropped-out input stays alive for the
//! backward. This op keeps only `u = dropout(x)·Aᵀ` `(rows, r)`; the dropout mask is a pure function of its seed
//! (see [`dropout_mask`]) and is redrawn in the backward, which computes
//! `dx = g·W + s·((g·B)·A) ⊙ mask`, `dA = s·(g·B)ᵀ·dropout(x)`, `dB = s·gᵀ·u` — and no gradient for `W`.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;

/// Elements per parallel task of the elementwise passes.
const CHUNK: usize = 16 * 1024;

/// The inverted-dropout multiplier of element `index` for `seed`: `1/(1−p)` with probability `1−p`, else 0.
/// A counter-based draw (splitmix64 of seed and index), so any element can be drawn again, in any order, in
/// parallel, and a resumed run draws the same masks.
pub fn dropout_mask(seed: u64, index: u64, p: f32) -> f32 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // 24 random bits → a uniform in [0, 1) exactly representable in f32.
    let u = (z >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
    let keep = 1.0 - p;
    if u < keep {
        1.0 / keep
    } else {
        0.0
    }
}

/// `x ⊙ mask(seed)`, in parallel.
pub(crate) fn apply_dropout(x: &[f32], p: f32, seed: u64) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(c, (dst, src))| {
            let base = (c * CHUNK) as u64;
            for (i, (d, &s)) in dst.iter_mut().zip(src).enumerate() {
                *d = s * dropout_mask(seed, base + i as u64, p);
            }
        });
    out
}

/// The adapter's dropout: probability and this forward pass's seed.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub p: f32,
    pub seed: u64,
}

struct LoraLinear {
    /// `(out, in)` f32 contiguous.
    weight: Tensor,
    scale: f32,
    dropout: Option<Dropout>,
    /// `u = dropout(x)·Aᵀ` `(rows, r)` from the forward.
    saved_u: Mutex<Option<Vec<f32>>>,
}

/// `dst (m×n, row-major) = beta·lhs·rhs` (`+=` with `accumulate`) on every core.
///
/// # Safety
/// As [`super::gemm_strided`]; `dst` is `m×n` contiguous.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    lhs: *const f32,
    lhs_strides: (usize, usize),
    rhs: *const f32,
    rhs_strides: (usize, usize),
    beta: f32,
    accumulate: bool,
) {
    let mode = super::GemmMode {
        beta,
        accumulate,
        parallelism: gemm::Parallelism::Rayon(candle_core::utils::get_num_threads()),
    };
    // SAFETY: forwarded to the caller.
    unsafe {
        super::gemm_strided(
            (m, n, k),
            dst,
            (n, 1),
            lhs,
            lhs_strides,
            rhs,
            rhs_strides,
            mode,
        )
    }
}

/// Calls `f` with the f32 elements of the contiguous CPU tensor `t` (no copy).
fn with_f32<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("lora-linear: {what} must be on the CPU")
    };
    Ok(f(super::contiguous_f32(cpu, layout, "lora-linear", what)?))
}

impl LoraLinear {
    fn dropped(&self, x: &[f32]) -> Option<Vec<f32>> {
        self.dropout.map(|d| apply_dropout(x, d.p, d.seed))
    }
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "lora-linear"
    }

    fn cpu_fwd(
        &self,
        x_storage: &CpuStorage,
        x_layout: &Layout,
        a_storage: &CpuStorage,
        a_layout: &Layout,
        b_storage: &CpuStorage,
        b_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, inp) = x_layout.shape().dims2()?;
        let (out, w_in) = self.weight.dims2()?;
        let (r, a_in) = a_layout.shape().dims2()?;
        if w_in != inp || a_in != inp || b_layout.shape().dims() != [out, r] {
            candle_core::bail!(
                "lora-linear: shapes x {:?}, W ({out}, {w_in}), A ({r}, {a_in}), B {:?} do not fit",
                x_layout.shape(),
                b_layout.shape()
            )
        }
        let x = super::contiguous_f32(x_storage, x_layout, "lora-linear", "x")?;
        let a = super::contiguous_f32(a_storage, a_layout, "lora-linear", "A")?;
        let b = super::contiguous_f32(b_storage, b_layout, "lora-linear", "B")?;
        let mut y = vec![0f32; rows * out];
        // SAFETY: y (rows×out) = x (rows×in) · Wᵀ (W row-major (out, in) read as (in, out) with strides (1, in)).
        with_f32(&self.weight, "W", |w| unsafe {
            gemm(
                (rows, out, inp),
                y.as_mut_ptr(),
                x.as_ptr(),
                (inp, 1),
                w.as_ptr(),
                (1, inp),
                1.0,
                false,
            );
        })?;
        let xd = self.dropped(x);
        let xd = xd.as_deref().unwrap_or(x);
        let mut u = vec![0f32; rows * r];
        // SAFETY: u (rows×r) = xd · Aᵀ as above; y += s·u·Bᵀ (B (out, r) read as (r, out)). Buffers sized to match.
        unsafe {
            gemm(
                (rows, r, inp),
                u.as_mut_ptr(),
                xd.as_ptr(),
                (inp, 1),
                a.as_ptr(),
                (1, inp),
                1.0,
                false,
            );
            gemm(
                (rows, out, r),
                y.as_mut_ptr(),
                u.as_ptr(),
                (r, 1),
                b.as_ptr(),
                (1, r),
                self.scale,
                true,
            );
        }
        if let Ok(mut saved) = self.saved_u.lock() {
            *saved = Some(u);
        }
        Ok((CpuStorage::F32(y), Shape::from((rows, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (rows, inp) = x.dims2()?;
        let (r, _) = a.dims2()?;
        let (out, _) = self.weight.dims2()?;
        let u = self
            .saved_u
            .lock()
            .map_err(|_| candle_core::Error::Msg("lora-linear: saved state poisoned".into()))?
            .take();
        let Some(u) = u else {
            candle_core::bail!("lora-linear: backward ran twice or before the forward")
        };
        let grad = grad.contiguous()?;
        let av = a.flatten_all()?.to_vec1::<f32>()?;
        let bv = b.flatten_all()?.to_vec1::<f32>()?;
        let s = self.scale;
        let mut dx = vec![0f32; rows * inp];
        let mut gb = vec![0f32; rows * r];
        let mut da = vec![0f32; r * inp];
        let mut db = vec![0f32; out * r];
        // SAFETY (all GEMMs): operands are these buffers and tensors' elements, sized for the shapes given.
        with_f32(&grad, "the gradient", |g| {
            with_f32(&self.weight, "W", |w| unsafe {
                // dx = g·W
                gemm(
                    (rows, inp, out),
                    dx.as_mut_ptr(),
                    g.as_ptr(),
                    (out, 1),
                    w.as_ptr(),
                    (inp, 1),
                    1.0,
                    false,
                );
            })?;
            unsafe {
                // gb = s·g·B (rows×r); dB = s·gᵀ·u (out×r).
                gemm(
                    (rows, r, out),
                    gb.as_mut_ptr(),
                    g.as_ptr(),
                    (out, 1),
                    bv.as_ptr(),
                    (r, 1),
                    s,
                    false,
                );
                gemm(
                    (out, r, rows),
                    db.as_mut_ptr(),
                    g.as_ptr(),
                    (1, out),
                    u.as_ptr(),
                    (r, 1),
                    s,
                    false,
                );
            }
            candle_core::Result::Ok(())
        })??;
        let x = x.contiguous()?;
        with_f32(&x, "x", |xs| {
            let xd = self.dropped(xs);
            let xd = xd.as_deref().unwrap_or(xs);
            // dA = gbᵀ·xd (r×in)
            unsafe {
                gemm(
                    (r, inp, rows),
                    da.as_mut_ptr(),
                    gb.as_ptr(),
                    (1, r),
                    xd.as_ptr(),
                    (inp, 1),
                    1.0,
                    false,
                );
            }
        })?;
        match self.dropout {
            // dx += gb·A directly when no dropout masks the adapter's input.
            None => unsafe {
                // SAFETY: dx (rows×in) += gb (rows×r) · A (r×in).
                gemm(
                    (rows, inp, r),
                    dx.as_mut_ptr(),
                    gb.as_ptr(),
                    (r, 1),
                    av.as_ptr(),
                    (inp, 1),
                    1.0,
                    true,
                );
            },
            Some(d) => {
                let mut dxd = vec![0f32; rows * inp];
                // SAFETY: dxd (rows×in) = gb (rows×r) · A (r×in).
                unsafe {
                    gemm(
                        (rows, inp, r),
                        dxd.as_mut_ptr(),
                        gb.as_ptr(),
                        (r, 1),
                        av.as_ptr(),
                        (inp, 1),
                        1.0,
                        false,
                    );
                }
                dx.par_chunks_mut(CHUNK)
                    .zip(dxd.par_chunks(CHUNK))
                    .enumerate()
                    .for_each(|(c, (dst, src))| {
                        let base = (c * CHUNK) as u64;
                        for (i, (o, &v)) in dst.iter_mut().zip(src).enumerate() {
                            *o += v * dropout_mask(d.seed, base + i as u64, d.p);
                        }
                    });
            }
        }
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (rows, inp), device)?),
            Some(Tensor::from_vec(da, (r, inp), device)?),
            Some(Tensor::from_vec(db, (out, r), device)?),
        ))
    }
}

/// Whether the fused layer applies: f32 CPU input, dense f32 contiguous weight, f32 adapters.
pub fn applies(x: &Tensor, weight: &Tensor, a: &Tensor, b: &Tensor) -> bool {
    [x, weight, a, b]
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.device().is_cpu())
        && weight.is_contiguous()
        && !weight.track_op()
        && (x.track_op() || a.track_op() || b.track_op())
}

/// `x·Wᵀ + scale·(dropout(x)·Aᵀ)·Bᵀ` for `x` `(rows, in)`; gradients flow to `x`, `A` and `B`.
pub fn lora_linear(
    x: &Tensor,
    weight: &Tensor,
    a: &Tensor,
    b: &Tensor,
    scale: f64,
    dropout: Option<Dropout>,
) -> Result<Tensor> {
    let op = LoraLinear {
        weight: weight.clone(),
        scale: scale as f32,
        dropout: dropout.filter(|d| d.p > 0.0),
        saved_u: Mutex::new(None),
    };
    Ok(x.contiguous()?.apply_op3_arc(
        &a.contiguous()?,
        &b.contiguous()?,
        std::sync::Arc::new(Box::new(op)),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn check(dropout: Option<Dropout>) {
        let dev = Device::Cpu;
        let (rows, inp, out, r) = (13, 21, 17, 4);
        let w = Tensor::randn(0f32, 1.0, (out, inp), &dev).unwrap();
        let var = |shape: (usize, usize)| {
            Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev).unwrap()).unwrap()
        };
        let (x, a, b) = (var((rows, inp)), var((r, inp)), var((out, r)));
        let ours = lora_linear(&x, &w, &a, &b, 0.75, dropout).unwrap();
        // The composition the decoder uses without this op.
        let xd = match dropout {
            Some(d) => crate::lora::dropout(&x, d.p, d.seed).unwrap(),
            None => x.as_tensor().clone(),
        };
        let lora = (xd
            .matmul(&a.t().unwrap())
            .unwrap()
            .matmul(&b.t().unwrap())
            .unwrap()
            * 0.75)
            .unwrap();
        let theirs = (x.matmul(&w.t().unwrap()).unwrap() + lora).unwrap();
        let max_diff = |p: &Tensor, q: &Tensor| -> f32 {
            (p - q)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        assert!(max_diff(&ours, &theirs) < 1e-4);
        let coef = Tensor::randn(0f32, 1.0, ours.shape(), &dev).unwrap();
        let grads = |y: &Tensor| (y * &coef).unwrap().sum_all().unwrap().backward().unwrap();
        let (ga, gb) = (grads(&ours), grads(&theirs));
        for (name, v) in [("x", &x), ("A", &a), ("B", &b)] {
            let diff = max_diff(
                ga.get(v.as_tensor()).unwrap(),
                gb.get(v.as_tensor()).unwrap(),
            );
            assert!(diff < 1e-3, "gradient of {name} differs by {diff}");
        }
    }

    #[test]
    fn matches_the_composed_layer() {
        check(None);
    }

    #[test]
    fn matches_the_composed_layer_with_dropout() {
        check(Some(Dropout { p: 0.3, seed: 42 }));
    }

    #[test]
    fn dropout_keeps_the_expected_share() {
        let kept = (0..100_000)
            .filter(|&i| dropout_mask(7, i, 0.25) > 0.0)
            .count();
        assert!((kept as f64 / 100_000.0 - 0.75).abs() < 0.01, "kept {kept}");
        assert_eq!(dropout_mask(7, 3, 0.25), dropout_mask(7, 3, 0.25));
    }
}
