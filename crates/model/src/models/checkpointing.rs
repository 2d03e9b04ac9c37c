//! Gradient checkpointing for the decoder layers: the forward keeps only each layer's input; the backward
//! recomputes the layer (same dropout seeds, so the same values) and backpropagates through it. candle has no
//! hook for a sub-graph's backward, so a layer runs inside a custom op whose `bwd` does the recomputation; the
//! gradients of the layer's trained variables found there (its adapters, and under full fine-tuning its own
//! weights) go to a shared [`CheckpointGrads`] store that the training loop adds to the main backward's
//! gradients.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, TensorId, Var};

use super::llama::{DecoderLayer, LayerStep};
use crate::error::Result;
use crate::kernels::attention::TokenLayout;

/// Gradients of the trained variables of recomputed layers (adapters, backbone weights), by tensor id.
#[derive(Debug, Clone, Default)]
pub struct CheckpointGrads(Arc<Mutex<HashMap<TensorId, Tensor>>>);

impl CheckpointGrads {
    /// Takes (and clears) the gradient collected for `var`.
    pub fn take(&self, var: &Var) -> Option<Tensor> {
        self.0.lock().ok()?.remove(&var.as_tensor().id())
    }

    fn add(&self, var: &Var, grad: Tensor) -> candle_core::Result<()> {
        let mut store = self
            .0
            .lock()
            .map_err(|_| candle_core::Error::Msg("checkpoint store poisoned".into()))?;
        let id = var.as_tensor().id();
        let sum = match store.remove(&id) {
            Some(prev) => (prev + grad)?,
            None => grad,
        };
        store.insert(id, sum);
        Ok(())
    }
}

struct Checkpointed {
    layer: DecoderLayer,
    cos: Tensor,
    sin: Tensor,
    mask: Option<Tensor>,
    tokens: Option<TokenLayout>,
    offset: usize,
    seed: Option<u64>,
    dropout: f32,
    grads: CheckpointGrads,
}

impl Checkpointed {
    fn run(&self, x: &Tensor) -> Result<Tensor> {
        let step = LayerStep {
            rope: (&self.cos, &self.sin),
            offset: self.offset,
            seed: self.seed,
            packed_mask: self.mask.as_ref(),
            tokens: self.tokens.as_ref(),
            intermediate_dropout: self.dropout,
        };
        self.layer.forward(x, None, &step)
    }
}

impl CustomOp1 for Checkpointed {
    fn name(&self) -> &'static str {
        "checkpointed-decoder-layer"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("gradient checkpointing: the layer input must be contiguous")
        };
        let (shape, cpu) = (layout.shape(), &candle_core::Device::Cpu);
        let x = match storage {
            CpuStorage::F32(d) => Tensor::from_slice(&d[start..end], shape, cpu)?,
            CpuStorage::BF16(d) => Tensor::from_slice(&d[start..end], shape, cpu)?,
            CpuStorage::F16(d) => Tensor::from_slice(&d[start..end], shape, cpu)?,
            _ => candle_core::bail!("gradient checkpointing runs on f32, bf16 or f16 activations"),
        };
        // A tracked input, as in the backward's recomputation and in a run without checkpointing: the ops then
        // take the same (composed) path, so the values are identical in every dtype (fused and composed ops
        // round differently in 16 bits). The layer's graph is dropped with `y` at the end of this call.
        let x = Var::from_tensor(&x)?;
        let y = self
            .run(x.as_tensor())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?
            .detach()
            .to_dtype(x.dtype())?
            .flatten_all()?;
        let out = match storage {
            CpuStorage::BF16(_) => CpuStorage::BF16(y.to_vec1()?),
            CpuStorage::F16(_) => CpuStorage::F16(y.to_vec1()?),
            _ => CpuStorage::F32(y.to_vec1()?),
        };
        Ok((out, shape.clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let x = Var::from_tensor(&arg.detach())?;
        let y = self
            .run(x.as_tensor())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let grads = (y * grad.detach())?.sum_all()?.backward()?;
        let vars = self.layer.lora_vars();
        for var in vars.into_iter().chain(self.layer.backbone_vars()) {
            if let Some(g) = grads.get(var.as_tensor()) {
                self.grads.add(&var, g.detach())?;
            }
        }
        Ok(grads.get(x.as_tensor()).map(|g| g.detach()))
    }
}

/// Runs `layer` on `x` keeping only `x` for the backward pass.
pub(crate) fn checkpointed(
    layer: &DecoderLayer,
    x: &Tensor,
    step: &LayerStep,
    grads: &CheckpointGrads,
) -> Result<Tensor> {
    let op = Checkpointed {
        layer: layer.clone(),
        cos: step.rope.0.clone(),
        sin: step.rope.1.clone(),
        mask: step.packed_mask.cloned(),
        tokens: step.tokens.cloned(),
        offset: step.offset,
        seed: step.seed,
        dropout: step.intermediate_dropout,
        grads: grads.clone(),
    };
    Ok(x.contiguous()?.apply_op1_arc(Arc::new(Box::new(op)))?)
}
