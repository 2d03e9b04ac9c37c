//! One decoding step over many sequences at once (continuous batching): each row brings one new token, its own
//! KV cache (so its own position) and its own adapter. The projections run as one product with the shared weights
//! over every row, each run of rows with the same adapter adding that adapter's low-rank update; attention runs
//! per row over its own cache. Inference only (no dropout, no autograd graph when the model is
//! [`Llama::for_inference`]).

use std::path::Path;

use candle_core::Tensor;

use super::llama::{DecoderLayer, LayerStep, Llama};
use crate::cache::KvCache;
use crate::error::{Error, Result};
use crate::lora::LoraAdapter;

/// A PEFT adapter's updates for every adaptable linear layer of a model (in [`Llama::linears`] order), kept apart
/// from the model so that many adapters share one loaded base.
#[derive(Debug, Clone)]
pub struct AdapterWeights {
    loras: Vec<Option<LoraAdapter>>,
}

impl AdapterWeights {
    /// The PEFT adapter in `dir` for `base` (a model without adapters).
    pub fn load(base: &Llama, dir: &Path) -> Result<AdapterWeights> {
        let mut model = base.clone();
        crate::adapter::load_peft(&mut model, dir)?;
        Ok(Self::of(&model.for_inference()))
    }

    /// The adapters attached to `model`'s linear layers.
    pub fn of(model: &Llama) -> AdapterWeights {
        AdapterWeights {
            loras: model
                .linears()
                .into_iter()
                .map(|(_, _, l)| l.lora().cloned())
                .collect(),
        }
    }

    /// Bytes of the adapter's tensors.
    pub fn bytes(&self) -> usize {
        self.loras
            .iter()
            .flatten()
            .map(|l| {
                let n = l.a.as_tensor().elem_count()
                    + l.b.as_tensor().elem_count()
                    + l.magnitude
                        .as_ref()
                        .map_or(0, |m| m.as_tensor().elem_count());
                n * l.a.as_tensor().dtype().size_in_bytes()
            })
            .sum()
    }

    fn linear(&self, index: usize) -> Option<&LoraAdapter> {
        self.loras.get(index).and_then(Option::as_ref)
    }
}

/// One sequence of a batched decoding step.
pub struct DecodeRow<'a> {
    /// The token to feed (the last one sampled).
    pub token: u32,
    /// The sequence's cache: its length is the token's position.
    pub cache: &'a mut KvCache,
    /// The adapter answering for this sequence (`None`: the base model).
    pub adapter: Option<&'a AdapterWeights>,
}

/// Adaptable linear layers per decoder layer (q, k, v, o, gate, up, down).
const LINEARS_PER_LAYER: usize = 7;

impl Llama {
    /// This model (shared weights, no copy) with `adapter`'s updates on its linear layers: what prefills a
    /// sequence of that adapter. The model must have no adapters of its own.
    pub fn with_adapter(&self, adapter: Option<&AdapterWeights>) -> Llama {
        let mut model = self.clone();
        for (i, (_, _, linear)) in model.linears_mut().into_iter().enumerate() {
            linear.set_lora(adapter.and_then(|a| a.linear(i)).cloned());
        }
        model
    }

    /// Logits `(rows, vocab)` in f32 of one new token per row, each at its own position, over its own cache
    /// (appended to) and with its own adapter.
    pub fn decode_step(&self, rows: &mut [DecodeRow]) -> Result<Tensor> {
        if rows.is_empty() {
            return Err(Error::InvalidGeneration(
                "a decoding step needs a row".into(),
            ));
        }
        let device = self.device().clone();
        let tokens: Vec<u32> = rows.iter().map(|r| r.token).collect();
        let ids = Tensor::new(tokens.as_slice(), &device)?;
        let hidden = self.config().hidden_size;
        let mut x = self.embed_tokens.index_select(&ids, 0)?; // (rows, hidden)
        let offsets: Vec<usize> = rows.iter().map(|r| r.cache.len()).collect();
        let mut ropes = Vec::with_capacity(rows.len());
        for &offset in &offsets {
            ropes.push(self.rotary.cos_sin(offset, 1)?);
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let adapters = |j: usize| -> Vec<Option<&LoraAdapter>> {
                rows.iter()
                    .map(|r| r.adapter.and_then(|a| a.linear(i * LINEARS_PER_LAYER + j)))
                    .collect()
            };
            let per_row: [Vec<Option<&LoraAdapter>>; LINEARS_PER_LAYER] =
                std::array::from_fn(adapters);
            x = decode_layer(layer, &x, rows, &offsets, &ropes, &per_row, i)?;
        }
        let x = self.norm.forward(&x.reshape((rows.len(), hidden))?)?;
        let no_adapters = vec![None; rows.len()];
        Ok(self
            .lm_head
            .forward_rows(&x, &no_adapters)?
            .to_dtype(candle_core::DType::F32)?)
    }
}

/// One decoder layer over `x` `(rows, hidden)`.
fn decode_layer(
    layer: &DecoderLayer,
    x: &Tensor,
    rows: &mut [DecodeRow],
    offsets: &[usize],
    ropes: &[(Tensor, Tensor)],
    adapters: &[Vec<Option<&LoraAdapter>>; LINEARS_PER_LAYER],
    index: usize,
) -> Result<Tensor> {
    let attn = &layer.self_attn;
    let h = layer.input_layernorm.forward(x)?;
    let q = attn.q_proj.forward_rows(&h, &adapters[0])?;
    let k = attn.k_proj.forward_rows(&h, &adapters[1])?;
    let v = attn.v_proj.forward_rows(&h, &adapters[2])?;
    let mut outs = Vec::with_capacity(rows.len());
    for (r, row) in rows.iter_mut().enumerate() {
        let one = |t: &Tensor| -> Result<Tensor> { Ok(t.narrow(0, r, 1)?.unsqueeze(0)?) };
        let step = LayerStep {
            rope: (&ropes[r].0, &ropes[r].1),
            offset: offsets[r],
            seed: None,
            packed_mask: None,
            tokens: None,
            intermediate_dropout: 0.0,
        };
        let out = attn.attend(
            &one(&q)?,
            &one(&k)?,
            &one(&v)?,
            Some((&mut *row.cache, index)),
            &step,
        )?;
        outs.push(out.squeeze(0)?);
    }
    let attended = Tensor::cat(&outs, 0)?;
    let x = (x + attn.o_proj.forward_rows(&attended, &adapters[3])?)?;
    let h = layer.post_attention_layernorm.forward(&x)?;
    let mlp = &layer.mlp;
    let gate = mlp.gate_proj.forward_rows(&h, &adapters[4])?;
    let up = mlp.up_proj.forward_rows(&h, &adapters[5])?;
    let down = mlp
        .down_proj
        .forward_rows(&crate::ops::swiglu(&gate, &up)?, &adapters[6])?;
    Ok((x + down)?)
}
