//! `x·Wᵀ` for a few rows of `x` (batched decoding: one row per sequence). Each weight row is read once for every
//! row of `x` and threads split the output columns, so a step over 8 sequences costs about one pass over the
//! weights, like a single sequence's GEMV. candle's GEMM packs (copies) the whole weight matrix for every call with
//! more than one row, which made an 8-row step cost 4–5 single-row steps.
//!
//! Every output element is one dot product summed in a fixed order, whatever the number of rows: a sequence gets
//! the same logits decoded alone or in a batch.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::error::Result;

/// Most rows this kernel takes (past it a GEMM's blocking pays).
pub const MAX_ROWS: usize = 16;

/// Output columns per parallel task.
const COLUMNS_PER_TASK: usize = 64;

/// Whether [`matmul_rows`] computes `x·wᵀ`: f32 on the CPU, `x` `(rows ≤ MAX_ROWS, k)`, `w` `(n, k)` contiguous.
pub fn applies(x: &Tensor, w: &Tensor) -> bool {
    let f32_cpu = |t: &Tensor| t.dtype() == candle_core::DType::F32 && t.device().is_cpu();
    matches!((x.dims2(), w.dims2()), (Ok((m, k)), Ok((_, k2))) if (1..=MAX_ROWS).contains(&m) && k == k2)
        && f32_cpu(x)
        && f32_cpu(w)
        && w.is_contiguous()
        && !w.track_op()
        && !x.track_op()
}

/// `x·wᵀ` `(rows, n)` for `x` `(rows, k)` and `w` `(n, k)` (see [`applies`]).
pub fn matmul_rows(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (m, k) = x.dims2()?;
    let (n, _) = w.dims2()?;
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let (storage, layout) = w.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        return Err(candle_core::Error::Msg(
            "small-m matmul: the weight must be on the CPU".into(),
        )
        .into());
    };
    let weights = super::contiguous_f32(cpu, layout, "small-m matmul", "the weight")?;
    // Column-major result (n, m): each task writes its own columns' rows; transposed at the end.
    let mut by_column = vec![0f32; n * m];
    let avx2 = has_avx2_fma();
    by_column
        .par_chunks_mut(COLUMNS_PER_TASK * m)
        .enumerate()
        .for_each(|(task, out)| {
            let first = task * COLUMNS_PER_TASK;
            for (j, column) in out.chunks_mut(m).enumerate() {
                let row = &weights[(first + j) * k..(first + j + 1) * k];
                if avx2 {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe { dots_avx2(row, &xs, k, column) }
                } else {
                    dots(row, &xs, k, column)
                }
            }
        });
    let mut out = vec![0f32; m * n];
    for (o, column) in by_column.chunks(m).enumerate() {
        for (r, v) in column.iter().enumerate() {
            out[r * n + o] = *v;
        }
    }
    Ok(Tensor::from_vec(out, (m, n), &Device::Cpu)?)
}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[r] = row·x_r` for every row `x_r` of `xs` (rows of `k`), each a [`dot`]; the weight row stays in L1.
#[inline(always)]
fn dots(row: &[f32], xs: &[f32], k: usize, out: &mut [f32]) {
    for (r, slot) in out.iter_mut().enumerate() {
        *slot = dot(row, &xs[r * k..(r + 1) * k]);
    }
}

/// `a·b` with 16 partial sums, then the tail; a fixed order (the portable path).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let chunks = a.len() / LANES;
    for c in 0..chunks {
        let (x, y) = (
            &a[c * LANES..(c + 1) * LANES],
            &b[c * LANES..(c + 1) * LANES],
        );
        for l in 0..LANES {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    let mut sum = 0f32;
    for v in acc {
        sum += v;
    }
    for i in chunks * LANES..a.len() {
        sum = a[i].mul_add(b[i], sum);
    }
    sum
}

/// [`dots`] with AVX2 + FMA: rows four at a time share each load of the weight row (eight independent FMA
/// chains keep both FMA units busy), the rest one at a time. Every row's arithmetic is the same either way — two
/// 8-lane accumulators over 16-float steps, the same reduction, the same scalar tail — so a row's result does not
/// depend on how many rows there are.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `xs` holds `out.len()` rows of `k = row.len()` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2(row: &[f32], xs: &[f32], k: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    debug_assert!(row.len() == k && xs.len() >= out.len() * k);
    let steps = k / 16;
    let finish = |acc0: __m256, acc1: __m256, x: &[f32]| -> f32 {
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc0, acc1)) };
        let mut sum = 0f32;
        for v in lanes {
            sum += v;
        }
        for i in steps * 16..k {
            sum = row[i].mul_add(x[i], sum);
        }
        sum
    };
    let w = row.as_ptr();
    let mut r = 0;
    while r + 4 <= out.len() {
        let x: [&[f32]; 4] = std::array::from_fn(|i| &xs[(r + i) * k..(r + i + 1) * k]);
        let mut acc = [_mm256_setzero_ps(); 8];
        for s in 0..steps {
            // SAFETY: `s * 16 + 16 <= k` floats of `row` and of each `x[i]`.
            unsafe {
                let w0 = _mm256_loadu_ps(w.add(s * 16));
                let w1 = _mm256_loadu_ps(w.add(s * 16 + 8));
                for i in 0..4 {
                    let p = x[i].as_ptr().add(s * 16);
                    acc[2 * i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(p), acc[2 * i]);
                    acc[2 * i + 1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(p.add(8)), acc[2 * i + 1]);
                }
            }
        }
        for i in 0..4 {
            out[r + i] = finish(acc[2 * i], acc[2 * i + 1], x[i]);
        }
        r += 4;
    }
    while r < out.len() {
        let x = &xs[r * k..(r + 1) * k];
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for s in 0..steps {
            // SAFETY: as above.
            unsafe {
                let p = x.as_ptr().add(s * 16);
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(w.add(s * 16)), _mm256_loadu_ps(p), acc0);
                acc1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(w.add(s * 16 + 8)),
                    _mm256_loadu_ps(p.add(8)),
                    acc1,
                );
            }
        }
        out[r] = finish(acc0, acc1, x);
        r += 1;
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dots_avx2(row: &[f32], xs: &[f32], k: usize, out: &mut [f32]) {
    dots(row, xs, k, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_candles_matmul_and_each_row_is_the_same_alone() {
        let x = Tensor::randn(0f32, 1.0, (5, 77), &Device::Cpu).unwrap();
        let w = Tensor::randn(0f32, 1.0, (130, 77), &Device::Cpu).unwrap();
        assert!(applies(&x, &w));
        let ours = matmul_rows(&x, &w).unwrap();
        let reference = x.matmul(&w.t().unwrap()).unwrap();
        let diff = ferrotune_test_support::max_diff(&ours, &reference);
        assert!(diff < 1e-4, "{diff}");
        for r in 0..5 {
            let alone = matmul_rows(&x.narrow(0, r, 1).unwrap(), &w).unwrap();
            let row = ours.narrow(0, r, 1).unwrap();
            assert_eq!(
                alone.to_vec2::<f32>().unwrap(),
                row.to_vec2::<f32>().unwrap()
            );
        }
        assert!(!applies(
            &Tensor::zeros((17, 77), candle_core::DType::F32, &Device::Cpu).unwrap(),
            &w
        ));
    }
}
