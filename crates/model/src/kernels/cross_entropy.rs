//! Cross-entropy of logits against target ids, fused: `nll_i = logsumexp(x_i) − x_i[t_i]` per row. The composed
//! version (candle's log_softmax, then gather) keeps four or five vocabulary-sized tensors per labelled token
//! for its backward; this op keeps only the logits and computes `dx_i = g_i · (softmax(x_i) − onehot(t_i))`
//! row by row in the backward, in parallel.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;

struct CrossEntropy {
    targets: Arc<Vec<u32>>,
}

fn rows<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<(&'a [f32], usize)> {
    let CpuStorage::F32(x) = storage else {
        candle_core::bail!("{op}: the logits must be f32")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: the logits must be contiguous")
    };
    let (_, v) = layout.shape().dims2()?;
    Ok((&x[start..end], v))
}

/// `(max, ln Σ exp(x − max))` of one row.
fn log_sum_exp(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
    (max, sum.ln())
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, v) = rows(storage, layout, "cross-entropy")?;
        let n = x.len() / v.max(1);
        if n != self.targets.len() {
            candle_core::bail!(
                "cross-entropy: {n} rows of logits but {} targets",
                self.targets.len()
            )
        }
        if let Some(&t) = self.targets.iter().find(|&&t| t as usize >= v) {
            candle_core::bail!("cross-entropy: target id {t} is outside the vocabulary of {v}")
        }
        let nll: Vec<f32> = x
            .par_chunks(v)
            .zip(self.targets.par_iter())
            .map(|(row, &t)| {
                let (max, lse) = log_sum_exp(row);
                max + lse - row[t as usize]
            })
            .collect();
        Ok((CpuStorage::F32(nll), Shape::from(n)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let op = CrossEntropyGrad {
            targets: self.targets.clone(),
            grad: grad.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?,
        };
        Ok(Some(arg.apply_op1_arc(Arc::new(Box::new(op)))?))
    }
}

/// The backward of [`CrossEntropy`]: `g_i · (softmax(x_i) − onehot(t_i))`.
struct CrossEntropyGrad {
    targets: Arc<Vec<u32>>,
    grad: Vec<f32>,
}

impl CustomOp1 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, v) = rows(storage, layout, "cross-entropy backward")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(v)
            .zip(x.par_chunks(v))
            .zip(self.targets.par_iter().zip(self.grad.par_iter()))
            .for_each(|((dst, row), (&t, &g))| {
                let (max, lse) = log_sum_exp(row);
                let shift = max + lse;
                for (d, &value) in dst.iter_mut().zip(row) {
                    *d = g * (value - shift).exp();
                }
                dst[t as usize] -= g;
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Negative log-likelihood of `targets` under `logits` `(n, vocab)` f32 → `(n)`, differentiable in the logits.
pub fn cross_entropy(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let op = CrossEntropy {
        targets: Arc::new(targets.to_vec()),
    };
    Ok(logits.contiguous()?.apply_op1_arc(Arc::new(Box::new(op)))?)
}

/// The reference: candle's log-softmax, then the target's entry.
pub fn cross_entropy_reference(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(logits, candle_core::D::Minus1)?;
    let t = Tensor::new(targets, logits.device())?.unsqueeze(1)?;
    Ok(log_probs.gather(&t, 1)?.squeeze(1)?.neg()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn values_and_gradient_match_log_softmax_and_gather() {
        let logits = Tensor::randn(0f32, 4.0, (7, 300), &Device::Cpu).unwrap();
        let targets = [0u32, 299, 5, 17, 150, 150, 3];
        let x = Var::from_tensor(&logits).unwrap();
        crate::kernels::assert_matches_reference(
            |x| cross_entropy(x, &targets),
            |x| cross_entropy_reference(x, &targets),
            &x,
            (1e-5, 1e-5),
        );
    }

    #[test]
    fn a_target_outside_the_vocabulary_is_an_error() {
        let logits = Tensor::zeros((2, 10), candle_core::DType::F32, &Device::Cpu).unwrap();
        let err = cross_entropy(&logits, &[1, 10]).unwrap_err().to_string();
        assert!(err.contains("outside the vocabulary"), "{err}");
    }
}
