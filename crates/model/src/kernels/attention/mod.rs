//! Causal grouped-query self-attention for training, with rotary embeddings fused in and its own backward.
//!
//! The composed attention of [`crate::models`] rotates q and k (six ops each), transposes and copies q, k and v,
//! scales q, builds and adds an `(n_rep·t × t)` mask, takes the softmax and transposes the output back — and
//! candle keeps most of those tensors alive for the backward. This op takes the projections as they leave the
//! linear layers, `(batch, seq, heads·head_dim)`, and returns the attention output in the same layout. Per
//! (row, head) it computes `P = softmax(scale·q̂·k̂ᵀ + mask)` with two GEMMs around a masked row softmax, where
//! `q̂`, `k̂` are the rotated projections; the backward needs only `P`, `q̂`, `k̂`, `v` (kept from the forward)
//! and returns the gradients of the three projections, rotated back.
//!
//! Visibility: causal (`j ≤ i`), optionally a sliding window (`j > i − w`), or — for packed rows — causal within
//! a sample, with padding (sequence id 0) attending to itself only. Positions index the cos/sin tables per token,
//! so packed samples restart at 0.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{gemm_strided, SharedMut, SERIAL};
use crate::error::Result;

const OP: &str = "fused attention";

/// What the attention of one decoder layer needs besides q, k and v.
#[derive(Debug, Clone)]
pub struct AttentionSpec {
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub sliding_window: Option<usize>,
}

/// Per-token rotary tables and visibility of a batch.
#[derive(Debug, Clone)]
pub struct TokenLayout {
    /// `(rows, head_dim)` cos and sin values, both halves equal; row `r` is used by the tokens whose
    /// [`Self::rope_row`] is `r`.
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
    /// Whether the tables have one row per (batch row, position) — packed rows — rather than one per position.
    pub per_token: bool,
    /// Packed rows: the sample id of each (batch row, position); 0 marks padding.
    pub sequence_ids: Option<Vec<Vec<u32>>>,
}

impl TokenLayout {
    fn rope_row(&self, bi: usize, i: usize, t: usize) -> usize {
        if self.per_token {
            bi * t + i
        } else {
            i
        }
    }
}

/// Attention output `(batch, seq, heads·head_dim)` of projections `q` `(batch, seq, heads·head_dim)` and `k`,
/// `v` `(batch, seq, kv_heads·head_dim)` (all at positions from 0; no cache), differentiable in all three.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    spec: &AttentionSpec,
    layout: TokenLayout,
) -> Result<Tensor> {
    let op = FusedAttention {
        spec: spec.clone(),
        layout,
        saved: Mutex::new(None),
    };
    Ok(q.contiguous()?.apply_op3_arc(
        &k.contiguous()?,
        &v.contiguous()?,
        std::sync::Arc::new(Box::new(op)),
    )?)
}

/// What the backward needs from the forward, `(batch, heads, seq, ·)` contiguous.
struct Saved {
    /// Rotated queries `(b, nh, t, d)`.
    q: Vec<f32>,
    /// Rotated keys `(b, nkv, t, d)`.
    k: Vec<f32>,
    /// Values `(b, nkv, t, d)`.
    v: Vec<f32>,
    /// Attention probabilities, one `len×len` block per (segment, head) in task order (0 where masked).
    p: Vec<f32>,
}

struct FusedAttention {
    spec: AttentionSpec,
    layout: TokenLayout,
    saved: Mutex<Option<Saved>>,
}

impl FusedAttention {
    fn dims(&self, q: &Layout) -> candle_core::Result<(usize, usize, usize, usize, usize)> {
        let (b, t, hd) = q.shape().dims3()?;
        let s = &self.spec;
        if hd != s.num_heads * s.head_dim
            || !s.num_heads.is_multiple_of(s.num_kv_heads)
            || !s.head_dim.is_multiple_of(2)
        {
            candle_core::bail!(
                "fused attention: q has {hd} features for {} heads of {}",
                s.num_heads,
                s.head_dim
            )
        }
        Ok((b, t, s.num_heads, s.num_kv_heads, s.head_dim))
    }

    fn visible(&self, bi: usize, i: usize, j: usize) -> bool {
        match &self.layout.sequence_ids {
            Some(ids) => {
                let seq = &ids[bi];
                if seq[i] == 0 {
                    i == j
                } else {
                    j <= i && seq[j] == seq[i]
                }
            }
            None => j <= i && self.spec.sliding_window.is_none_or(|w| i < w || j > i - w),
        }
    }

    /// Rotates `src` (one head's `d` values of token `i` of row `bi`) into `dst`; `inverse` applies the
    /// transposed rotation (the backward of the rotation).
    fn rotate(&self, dst: &mut [f32], src: &[f32], bi: usize, i: usize, t: usize, inverse: bool) {
        let d = src.len();
        let half = d / 2;
        let row = self.layout.rope_row(bi, i, t) * d;
        let (cos, sin) = (
            &self.layout.cos[row..row + d],
            &self.layout.sin[row..row + d],
        );
        let sign = if inverse { -1.0 } else { 1.0 };
        for c in 0..half {
            let (x1, x2) = (src[c], src[c + half]);
            dst[c] = x1 * cos[c] - sign * x2 * sin[c];
            dst[c + half] = x2 * cos[c + half] + sign * x1 * sin[c + half];
        }
    }

    /// `src` `(b, t, heads·d)` → rotated (or not) `(b, heads, t, d)`.
    fn split_heads(
        &self,
        src: &[f32],
        (_, t, heads, d): (usize, usize, usize, usize),
        rotate: bool,
    ) -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(t * d).enumerate().for_each(|(bh, dst)| {
            let (bi, h) = (bh / heads, bh % heads);
            for i in 0..t {
                let from = &src[(bi * t + i) * heads * d + h * d..][..d];
                let to = &mut dst[i * d..(i + 1) * d];
                if rotate {
                    self.rotate(to, from, bi, i, t, false);
                } else {
                    to.copy_from_slice(from);
                }
            }
        });
        out
    }

    /// `(b, heads, t, d)` gradients → `(b, t, heads·d)`, rotated back where the forward rotated.
    fn merge_heads(
        &self,
        src: &[f32],
        (_, t, heads, d): (usize, usize, usize, usize),
        rotated: bool,
    ) -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(heads * d)
            .enumerate()
            .for_each(|(bt, dst)| {
                let (bi, i) = (bt / t, bt % t);
                for h in 0..heads {
                    let from = &src[((bi * heads + h) * t + i) * d..][..d];
                    let to = &mut dst[h * d..(h + 1) * d];
                    if rotated {
                        self.rotate(to, from, bi, i, t, true);
                    } else {
                        to.copy_from_slice(from);
                    }
                }
            });
        out
    }
}

/// A run of tokens of one batch row that attend only among themselves: `(row, start, len)`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    row: usize,
    start: usize,
    len: usize,
}

impl FusedAttention {
    /// The independent attention blocks of a `(b, t)` batch: each packed sample (a run of one sequence id, each
    /// padding token alone) or, unpacked, each row. A sequence id that comes back after another one (never made
    /// by packing) makes its row one block, where [`Self::visible`] still decides every pair.
    fn segments(&self, b: usize, t: usize) -> Vec<Segment> {
        let mut out = Vec::new();
        for row in 0..b {
            let Some(ids) = self.layout.sequence_ids.as_ref().map(|ids| &ids[row]) else {
                out.push(Segment {
                    row,
                    start: 0,
                    len: t,
                });
                continue;
            };
            let mut runs = Vec::new();
            let mut start = 0;
            for i in 1..=t {
                if i == t || ids[i] != ids[start] || ids[i] == 0 {
                    runs.push(Segment {
                        row,
                        start,
                        len: i - start,
                    });
                    start = i;
                }
            }
            let mut seen = std::collections::HashSet::new();
            let contiguous = runs
                .iter()
                .all(|r| ids[r.start] == 0 || seen.insert(ids[r.start]));
            if contiguous {
                out.extend(runs);
            } else {
                out.push(Segment {
                    row,
                    start: 0,
                    len: t,
                });
            }
        }
        out
    }
}

/// Splits `buf` into consecutive mutable chunks of the given lengths.
fn split_chunks(mut buf: &mut [f32], lengths: impl Iterator<Item = usize>) -> Vec<&mut [f32]> {
    let mut out = Vec::new();
    for len in lengths {
        let (head, tail) = std::mem::take(&mut buf).split_at_mut(len);
        out.push(head);
        buf = tail;
    }
    out
}

impl CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "fused-causal-attention"
    }

    fn cpu_fwd(
        &self,
        q_storage: &CpuStorage,
        q_layout: &Layout,
        k_storage: &CpuStorage,
        k_layout: &Layout,
        v_storage: &CpuStorage,
        v_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, t, nh, nkv, d) = self.dims(q_layout)?;
        if k_layout.shape().dims() != [b, t, nkv * d] || v_layout.shape().dims() != [b, t, nkv * d]
        {
            candle_core::bail!("fused attention: k and v must be ({b}, {t}, {})", nkv * d)
        }
        let (q, k, v) = (
            super::contiguous_f32(q_storage, q_layout, OP, "q")?,
            super::contiguous_f32(k_storage, k_layout, OP, "k")?,
            super::contiguous_f32(v_storage, v_layout, OP, "v")?,
        );
        let qh = self.split_heads(q, (b, t, nh, d), true);
        let kh = self.split_heads(k, (b, t, nkv, d), true);
        let vh = self.split_heads(v, (b, t, nkv, d), false);
        let n_rep = nh / nkv;
        let scale = 1.0 / (d as f32).sqrt();
        let segments = self.segments(b, t);
        // One task per (segment, head), each with its own len×len block of probabilities.
        let tasks: Vec<(Segment, usize)> = segments
            .iter()
            .flat_map(|&seg| (0..nh).map(move |h| (seg, h)))
            .collect();
        let mut p = vec![0f32; tasks.iter().map(|(s, _)| s.len * s.len).sum()];
        let mut out = vec![0f32; b * t * nh * d];
        let out_ptr = SharedMut(out.as_mut_ptr());
        let blocks = split_chunks(&mut p, tasks.iter().map(|(s, _)| s.len * s.len));
        tasks.par_iter().zip(blocks).for_each(|(&(seg, h), probs)| {
            let Segment { row, start, len: l } = seg;
            let (qi, gi) = (row * nh + h, row * nkv + h / n_rep);
            let qs = &qh[(qi * t + start) * d..][..l * d];
            let ks = &kh[(gi * t + start) * d..][..l * d];
            let vs = &vh[(gi * t + start) * d..][..l * d];
            // SAFETY: scores (l×l) = q̂ (l×d, row-major) · k̂ᵀ (k̂ row-major read with swapped strides).
            unsafe {
                gemm_strided(
                    (l, l, d),
                    probs.as_mut_ptr(),
                    (l, 1),
                    qs.as_ptr(),
                    (d, 1),
                    ks.as_ptr(),
                    (1, d),
                    SERIAL,
                );
            }
            for (i, scores) in probs.chunks_exact_mut(l).enumerate() {
                let mut max = f32::NEG_INFINITY;
                for (j, s) in scores.iter_mut().enumerate() {
                    if self.visible(row, start + i, start + j) {
                        *s *= scale;
                        max = max.max(*s);
                    } else {
                        *s = f32::NEG_INFINITY;
                    }
                }
                let mut sum = 0f32;
                for s in scores.iter_mut() {
                    *s = if *s == f32::NEG_INFINITY {
                        0.0
                    } else {
                        (*s - max).exp()
                    };
                    sum += *s;
                }
                let inv = 1.0 / sum;
                scores.iter_mut().for_each(|s| *s *= inv);
            }
            // SAFETY: this task alone writes columns h·d..(h+1)·d of its segment's output rows (row stride nh·d).
            unsafe {
                gemm_strided(
                    (l, d, l),
                    out_ptr.get().add((row * t + start) * nh * d + h * d),
                    (nh * d, 1),
                    probs.as_ptr(),
                    (l, 1),
                    vs.as_ptr(),
                    (d, 1),
                    SERIAL,
                );
            }
        });
        if let Ok(mut saved) = self.saved.lock() {
            *saved = Some(Saved {
                q: qh,
                k: kh,
                v: vh,
                p,
            });
        }
        Ok((CpuStorage::F32(out), Shape::from((b, t, nh * d))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        _k: &Tensor,
        _v: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, nh, nkv, d) = self.dims(q.layout())?;
        let saved = self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("fused attention: saved state poisoned".into()))?
            .take();
        let Some(Saved {
            q: qh,
            k: kh,
            v: vh,
            p,
        }) = saved
        else {
            candle_core::bail!("fused attention: backward ran twice or before the forward")
        };
        let grad = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let out = res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let n_rep = nh / nkv;
        let scale = 1.0 / (d as f32).sqrt();
        let segments = self.segments(b, t);
        let tasks: Vec<(Segment, usize)> = segments
            .iter()
            .flat_map(|&seg| (0..nh).map(move |h| (seg, h)))
            .collect();
        let mut offsets = Vec::with_capacity(tasks.len());
        let mut at = 0;
        for (seg, _) in &tasks {
            offsets.push(at);
            at += seg.len * seg.len;
        }
        // Per query head: dq̂ (b, nh, t, d), and the head's shares of dk̂ and dv, summed per kv head below.
        let mut dq = vec![0f32; b * nh * t * d];
        let mut dk_parts = vec![0f32; b * nh * t * d];
        let mut dv_parts = vec![0f32; b * nh * t * d];
        let (dq_ptr, dk_ptr, dv_ptr) = (
            SharedMut(dq.as_mut_ptr()),
            SharedMut(dk_parts.as_mut_ptr()),
            SharedMut(dv_parts.as_mut_ptr()),
        );
        tasks
            .par_iter()
            .zip(&offsets)
            .for_each(|(&(seg, h), &offset)| {
                let Segment { row, start, len: l } = seg;
                let (qi, gi) = (row * nh + h, row * nkv + h / n_rep);
                let qs = &qh[(qi * t + start) * d..][..l * d];
                let ks = &kh[(gi * t + start) * d..][..l * d];
                let vs = &vh[(gi * t + start) * d..][..l * d];
                let probs = &p[offset..][..l * l];
                // dO and O of this head and segment: rows at column h·d, row stride nh·d.
                let at = (row * t + start) * nh * d + h * d;
                let (go, o) = (&grad[at..], &out[at..]);
                let mut ds = vec![0f32; l * l];
                // SAFETY (all GEMMs): read operands cover the addressed elements (dO/O rows at stride nh·d, l×d head
                // blocks, l×l probabilities); this task alone writes rows start..start+l of head (row, h) of dq̂ and
                // of the dk̂/dv shares.
                unsafe {
                    // dP = dO · vᵀ
                    gemm_strided(
                        (l, l, d),
                        ds.as_mut_ptr(),
                        (l, 1),
                        go.as_ptr(),
                        (nh * d, 1),
                        vs.as_ptr(),
                        (1, d),
                        SERIAL,
                    );
                }
                for i in 0..l {
                    let row_o = &o[i * nh * d..][..d];
                    let row_g = &go[i * nh * d..][..d];
                    let delta: f32 = row_o.iter().zip(row_g).map(|(a, b)| a * b).sum();
                    let (pr, dr) = (&probs[i * l..(i + 1) * l], &mut ds[i * l..(i + 1) * l]);
                    for (s, &pv) in dr.iter_mut().zip(pr) {
                        *s = pv * (*s - delta) * scale;
                    }
                }
                let own = (qi * t + start) * d;
                unsafe {
                    // dq̂ = dS · k̂
                    gemm_strided(
                        (l, d, l),
                        dq_ptr.get().add(own),
                        (d, 1),
                        ds.as_ptr(),
                        (l, 1),
                        ks.as_ptr(),
                        (d, 1),
                        SERIAL,
                    );
                    // dk̂ share = dSᵀ · q̂
                    gemm_strided(
                        (l, d, l),
                        dk_ptr.get().add(own),
                        (d, 1),
                        ds.as_ptr(),
                        (1, l),
                        qs.as_ptr(),
                        (d, 1),
                        SERIAL,
                    );
                    // dv share = Pᵀ · dO
                    gemm_strided(
                        (l, d, l),
                        dv_ptr.get().add(own),
                        (d, 1),
                        probs.as_ptr(),
                        (1, l),
                        go.as_ptr(),
                        (nh * d, 1),
                        SERIAL,
                    );
                }
            });
        drop(p);
        let group_sum = |parts: &[f32]| -> Vec<f32> {
            let mut sum = vec![0f32; b * nkv * t * d];
            sum.par_chunks_mut(t * d).enumerate().for_each(|(bg, dst)| {
                let (bi, g) = (bg / nkv, bg % nkv);
                for r in 0..n_rep {
                    let h = g * n_rep + r;
                    let src = &parts[(bi * nh + h) * t * d..][..t * d];
                    dst.iter_mut().zip(src).for_each(|(a, b)| *a += b);
                }
            });
            sum
        };
        let (dk, dv) = (group_sum(&dk_parts), group_sum(&dv_parts));
        let device = q.device();
        let dq = Tensor::from_vec(
            self.merge_heads(&dq, (b, t, nh, d), true),
            (b, t, nh * d),
            device,
        )?;
        let dk = Tensor::from_vec(
            self.merge_heads(&dk, (b, t, nkv, d), true),
            (b, t, nkv * d),
            device,
        )?;
        let dv = Tensor::from_vec(
            self.merge_heads(&dv, (b, t, nkv, d), false),
            (b, t, nkv * d),
            device,
        )?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

#[cfg(test)]
mod tests;
