//! Full fine-tuning (`training.lora: false`): the backbone's own weights as trained variables.
//!
//! [`Llama::train_all`] swaps each chosen weight for a [`Var`] and keeps the variable's tensor in the model, so
//! the forward pass needs no switch of its own: every op picks its path from whether its weight tracks
//! gradients. A frozen weight (an untracked tensor) keeps the fast kernels whose backward returns only the input
//! gradient ([`crate::kernels::frozen_matmul`], [`crate::kernels::rms_norm::rms_norm`]); a trained one goes
//! through candle's matmul (both operand gradients), [`crate::kernels::rms_norm::rms_norm_trainable`] (weight
//! gradient too), `index_select` for the embedding and `broadcast_add` for biases. An optimizer that updates a
//! returned variable in place (`Var::set`) updates the model, and every view ([`Llama::for_inference`],
//! gradient checkpointing's recomputed layers) shares that storage.

use candle_core::{DType, Tensor, Var};

use super::llama::{DecoderLayer, Llama};
use crate::error::{Error, Result};
use crate::layers::{Linear, LinearWeight};

/// The Hugging Face name of the token embedding (and of a tied LM head, which has no name of its own).
pub const EMBEDDING: &str = "model.embed_tokens.weight";

/// Where a backbone weight lives in the model.
enum Slot<'a> {
    /// The embedding, a norm weight or a bias.
    Tensor(&'a mut Tensor),
    /// A linear layer's weight, dense or quantized.
    Linear(&'a mut LinearWeight),
}

impl Slot<'_> {
    /// The dense tensor, or `None` for a quantized weight.
    fn dense(&mut self) -> Option<&mut Tensor> {
        match self {
            Slot::Tensor(t) => Some(t),
            Slot::Linear(LinearWeight::Dense(t)) => Some(t),
            Slot::Linear(LinearWeight::Quantized(_)) => None,
        }
    }
}

fn push_linear<'a>(out: &mut Vec<(String, Slot<'a>)>, prefix: String, linear: &'a mut Linear) {
    let (weight, bias) = linear.parts_mut();
    out.push((format!("{prefix}.weight"), Slot::Linear(weight)));
    if let Some(bias) = bias {
        out.push((format!("{prefix}.bias"), Slot::Tensor(bias)));
    }
}

/// The weights of decoder layer `index`, in `named_parameters()` order.
fn layer_slots<'a>(out: &mut Vec<(String, Slot<'a>)>, index: usize, layer: &'a mut DecoderLayer) {
    let DecoderLayer {
        input_layernorm,
        self_attn: a,
        post_attention_layernorm,
        mlp: m,
    } = layer;
    let p = format!("model.layers.{index}");
    let linears = [
        ("self_attn.q_proj", &mut a.q_proj),
        ("self_attn.k_proj", &mut a.k_proj),
        ("self_attn.v_proj", &mut a.v_proj),
        ("self_attn.o_proj", &mut a.o_proj),
        ("mlp.gate_proj", &mut m.gate_proj),
        ("mlp.up_proj", &mut m.up_proj),
        ("mlp.down_proj", &mut m.down_proj),
    ];
    for (name, linear) in linears {
        push_linear(out, format!("{p}.{name}"), linear);
    }
    let norms = [
        ("input_layernorm", &mut input_layernorm.weight),
        (
            "post_attention_layernorm",
            &mut post_attention_layernorm.weight,
        ),
    ];
    for (name, weight) in norms {
        out.push((format!("{p}.{name}.weight"), Slot::Tensor(weight)));
    }
}

/// Every backbone weight with its Hugging Face name, in transformers' `named_parameters()` order; a tied LM
/// head that shares the embedding's buffer is left out (it is [`EMBEDDING`]).
fn slots(model: &mut Llama) -> Vec<(String, Slot<'_>)> {
    let Llama {
        embed_tokens,
        layers,
        norm,
        lm_head,
        lm_head_shares_embedding,
        ..
    } = model;
    let mut out = vec![(EMBEDDING.to_string(), Slot::Tensor(embed_tokens))];
    for (index, layer) in layers.iter_mut().enumerate() {
        layer_slots(&mut out, index, layer);
    }
    out.push((
        "model.norm.weight".to_string(),
        Slot::Tensor(&mut norm.weight),
    ));
    if !*lm_head_shares_embedding {
        push_linear(&mut out, "lm_head".to_string(), lm_head);
    }
    out
}

/// H2O LLM Studio's `training.freeze_layers`: a parameter is frozen when any listed string is part of its name.
pub fn is_frozen(name: &str, frozen: &[String]) -> bool {
    frozen.iter().any(|f| name.contains(f.as_str()))
}

impl Llama {
    /// Makes every backbone weight whose Hugging Face name (`model.embed_tokens.weight`,
    /// `model.layers.0.self_attn.q_proj.weight`, `….bias`, `model.norm.weight`, `lm_head.weight`) contains none
    /// of the `frozen` strings a trained f32 variable, and returns those variables with their names in
    /// transformers' `named_parameters()` order. The others stay frozen (and keep their fast kernels).
    ///
    /// A tied LM head without a weight of its own is the embedding's variable (listed once, as
    /// `model.embed_tokens.weight`, as transformers lists it). Calling it again returns the same variables for
    /// weights that stay trained and freezes those now matched by `frozen`. Under gradient checkpointing the
    /// gradients of the decoder layers' variables arrive in [`super::CheckpointGrads`], not in the backward's
    /// store.
    ///
    /// Errors with [`Error::FullFineTuningNeedsF32`] unless the model computes in f32 and every weight to train
    /// is dense (not int8/NF4).
    pub fn train_all(&mut self, frozen: &[String]) -> Result<Vec<(String, Var)>> {
        if self.dtype() != DType::F32 {
            return Err(Error::FullFineTuningNeedsF32 {
                reason: format!("the backbone computes in {:?}", self.dtype()),
            });
        }
        let mut slots = slots(self);
        for (name, slot) in &mut slots {
            if slot.dense().is_none() && !is_frozen(name, frozen) {
                return Err(Error::FullFineTuningNeedsF32 {
                    reason: format!("`{name}` is quantized"),
                });
            }
        }
        let mut vars = Vec::new();
        for (name, mut slot) in slots {
            let Some(tensor) = slot.dense() else { continue };
            if is_frozen(&name, frozen) {
                *tensor = tensor.detach();
                continue;
            }
            let var = Var::from_tensor(&tensor.to_dtype(DType::F32)?)?;
            *tensor = var.as_tensor().clone();
            vars.push((name, var));
        }
        self.retie_lm_head();
        Ok(vars)
    }

    /// Every backbone weight with its Hugging Face name, in `named_parameters()` order (a tied LM head without
    /// a weight of its own is not listed): dense weights as they are (trained variables included), quantized
    /// ones dequantized to f32.
    pub fn backbone_weights(&self) -> Result<Vec<(String, Tensor)>> {
        let mut model = self.clone();
        let device = self.device().clone();
        slots(&mut model)
            .into_iter()
            .map(|(name, slot)| {
                let tensor = match slot {
                    Slot::Tensor(t) => t.clone(),
                    Slot::Linear(w) => w.to_dense(DType::F32, &device)?,
                };
                Ok((name, tensor))
            })
            .collect()
    }

    /// A copy of the backbone with weights of its own (dense ones copied, quantized ones shared: they never
    /// train), no adapters and nothing tracked: full fine-tuning's reference model for preference tuning, which
    /// must not see the training steps.
    pub fn frozen_copy(&self) -> Result<Llama> {
        let mut model = self.without_adapters();
        for (_, mut slot) in slots(&mut model) {
            if let Some(tensor) = slot.dense() {
                *tensor = tensor.detach().copy()?;
            }
        }
        model.retie_lm_head();
        Ok(model)
    }

    /// Replaces every trained variable by a detached tensor on the same storage (later steps stay visible).
    pub(crate) fn detach_backbone(&mut self) {
        for (_, mut slot) in slots(self) {
            if let Some(tensor) = slot.dense() {
                *tensor = tensor.detach();
            }
        }
        self.retie_lm_head();
    }

    /// A tied LM head without a weight of its own is the embedding's tensor again (after it was replaced).
    fn retie_lm_head(&mut self) {
        if self.lm_head_shares_embedding {
            *self.lm_head.parts_mut().0 = LinearWeight::Dense(self.embed_tokens.clone());
        }
    }
}

impl DecoderLayer {
    /// The layer's backbone weights that are trained variables (none unless [`Llama::train_all`] made them so).
    pub(crate) fn backbone_vars(&self) -> Vec<Var> {
        let mut layer = self.clone();
        let mut out = Vec::new();
        layer_slots(&mut out, 0, &mut layer);
        out.into_iter()
            .filter_map(|(_, mut slot)| {
                let tensor = slot.dense()?;
                tensor
                    .is_variable()
                    .then(|| Var::from_tensor(tensor).ok())
                    .flatten()
            })
            .collect()
    }
}
