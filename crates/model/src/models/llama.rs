//! The Llama-family decoder (Llama, Mistral, Qwen2), following transformers' `modeling_llama.py`:
//! token embedding → N × [RMSNorm → grouped-query self-attention with rotary positions → residual → RMSNorm →
//! SwiGLU MLP → residual] → RMSNorm → LM head (tied to the embedding or not).
//!
//! Written for training as well as inference: every op is either differentiable or switches to a
//! differentiable composition when its input tracks gradients (see [`crate::ops`]). Reads no files: weights come
//! from [`Weights`].

use candle_core::{DType, Device, Tensor, D};

use crate::cache::KvCache;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::kernels::attention::{self, AttentionSpec, TokenLayout};
use crate::layers::Linear;
use crate::ops;
use crate::quant::Quantization;
use crate::rope::RotaryEmbedding;
use crate::weights::Weights;

pub use super::options::{ForwardOptions, Packing};

/// How linear weights are kept: the compute dtype and the quantization of the decoder layers' projections.
type Storage = (DType, Quantization);

#[derive(Debug, Clone)]
pub(super) struct RmsNorm {
    pub(super) weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(
        weights: &Weights,
        name: &str,
        cfg: &ModelConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            weight: weights.load(name, Some(&[cfg.hidden_size]), dtype, device)?,
            eps: cfg.rms_norm_eps,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::rms_norm(x, &self.weight, self.eps)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Attention {
    pub(super) q_proj: Linear,
    pub(super) k_proj: Linear,
    pub(super) v_proj: Linear,
    pub(super) o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    sliding_window: Option<usize>,
}

impl Attention {
    fn load(
        weights: &Weights,
        prefix: &str,
        cfg: &ModelConfig,
        storage: Storage,
        device: &Device,
    ) -> Result<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_dim);
        let q_out = cfg.num_heads * d;
        let kv_out = cfg.num_kv_heads * d;
        let lin = |name: &str, shape, bias| {
            Linear::load(
                weights,
                &format!("{prefix}.{name}"),
                shape,
                bias,
                storage,
                device,
            )
        };
        Ok(Self {
            q_proj: lin("q_proj", (q_out, h), cfg.qkv_bias)?,
            k_proj: lin("k_proj", (kv_out, h), cfg.qkv_bias)?,
            v_proj: lin("v_proj", (kv_out, h), cfg.qkv_bias)?,
            o_proj: lin("o_proj", (h, q_out), cfg.o_bias)?,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: d,
            sliding_window: cfg.sliding_window,
        })
    }

    /// `x`: `(batch, seq, hidden)` at positions `step.offset..step.offset+seq`.
    fn forward(
        &self,
        x: &Tensor,
        cache: Option<(&mut KvCache, usize)>,
        step: &LayerStep,
    ) -> Result<Tensor> {
        let (seed, tokens) = (step.seed, step.tokens);
        let (nh, nkv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = self.q_proj.forward_t(x, sub_seed(seed, 0))?;
        let k = self.k_proj.forward_t(x, sub_seed(seed, 1))?;
        let v = self.v_proj.forward_t(x, sub_seed(seed, 2))?;
        // `tokens` is given exactly when the fused attention applies (f32 on the CPU, no cache).
        if let (None, Some(layout)) = (&cache, tokens) {
            let spec = AttentionSpec {
                num_heads: nh,
                num_kv_heads: nkv,
                head_dim: d,
                sliding_window: self.sliding_window,
            };
            let out = attention::causal_attention(&q, &k, &v, &spec, layout.clone())?;
            return self.o_proj.forward_t(&out, sub_seed(seed, 3));
        }
        let out = self.attend(&q, &k, &v, cache, step)?;
        self.o_proj.forward_t(&out, sub_seed(seed, 3))
    }

    /// Attention of projected `q`, `k`, `v` `(batch, seq, heads·head_dim)` over what `cache` holds and these
    /// positions (appending them to it): `(batch, seq, heads·head_dim)`, before the output projection.
    pub(super) fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        cache: Option<(&mut KvCache, usize)>,
        step: &LayerStep,
    ) -> Result<Tensor> {
        let ((cos, sin), offset) = (step.rope, step.offset);
        let packed_mask = step.packed_mask;
        let (b, t, _) = q.dims3()?;
        let (nh, nkv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = q.reshape((b, t, nh, d))?.transpose(1, 2)?;
        let k = k.reshape((b, t, nkv, d))?.transpose(1, 2)?;
        let v = v.reshape((b, t, nkv, d))?.transpose(1, 2)?;
        let (q, k) = if packed_mask.is_some() {
            // Per-token positions: cos/sin are (b, 1, t, d); only the composed rope broadcasts them.
            (
                ops::apply_rope_reference(&q, cos, sin)?,
                ops::apply_rope_reference(&k, cos, sin)?,
            )
        } else {
            (
                ops::apply_rope(&q, cos, sin)?,
                ops::apply_rope(&k, cos, sin)?,
            )
        };
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, &k, &v.contiguous()?)?,
            None => (k.contiguous()?, v.contiguous()?),
        };
        let s = k.dim(2)?;
        // Grouped-query attention without copying keys/values: the `n_rep` query heads that share one kv head
        // are folded into the row dimension, (b, nkv, n_rep·t, d) against (b, nkv, s, d).
        let n_rep = nh / nkv;
        let q = (q.contiguous()? * (1.0 / (d as f64).sqrt()))?.reshape((b, nkv, n_rep * t, d))?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(mask) = packed_mask {
            scores = scores.broadcast_add(mask)?;
        } else if let Some(mask) = attention_mask(
            t,
            s,
            offset,
            self.sliding_window,
            n_rep,
            scores.dtype(),
            q.device(),
        )? {
            scores = scores.broadcast_add(&mask)?;
        }
        let probs = ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&v)?; // (b, nkv, n_rep·t, d)
        Ok(out
            .reshape((b, nh, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, nh * d))?)
    }
}

/// A distinct, reproducible seed per (layer, module) derived from the step's seed (splitmix64).
fn sub_seed(seed: Option<u64>, salt: u64) -> Option<u64> {
    seed.map(|s| {
        let mut z = s.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(salt + 1));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// Additive causal (and sliding-window) mask `(n_rep·t, s)` for queries at `offset..offset+t`; `None` when
/// nothing needs masking (a single query that may see every key).
fn attention_mask(
    t: usize,
    s: usize,
    offset: usize,
    window: Option<usize>,
    n_rep: usize,
    dtype: DType,
    device: &Device,
) -> Result<Option<Tensor>> {
    let masked = |i: usize, j: usize| {
        let pos = offset + i;
        j > pos || window.is_some_and(|w| pos >= w && j <= pos - w)
    };
    let any = (0..t).any(|i| (0..s).any(|j| masked(i, j)));
    if !any {
        return Ok(None);
    }
    let mut data = Vec::with_capacity(n_rep * t * s);
    for _ in 0..n_rep {
        for i in 0..t {
            data.extend((0..s).map(|j| if masked(i, j) { f32::NEG_INFINITY } else { 0.0 }));
        }
    }
    Ok(Some(
        Tensor::from_vec(data, (n_rep * t, s), device)?.to_dtype(dtype)?,
    ))
}

#[derive(Debug, Clone)]
pub(super) struct Mlp {
    pub(super) gate_proj: Linear,
    pub(super) up_proj: Linear,
    pub(super) down_proj: Linear,
}

impl Mlp {
    fn load(
        weights: &Weights,
        prefix: &str,
        cfg: &ModelConfig,
        storage: Storage,
        device: &Device,
    ) -> Result<Self> {
        let (h, i, bias) = (cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias);
        let lin = |name: &str, shape| {
            Linear::load(
                weights,
                &format!("{prefix}.{name}"),
                shape,
                bias,
                storage,
                device,
            )
        };
        Ok(Self {
            gate_proj: lin("gate_proj", (i, h))?,
            up_proj: lin("up_proj", (i, h))?,
            down_proj: lin("down_proj", (h, i))?,
        })
    }

    fn forward(&self, x: &Tensor, seed: Option<u64>) -> Result<Tensor> {
        let gate = self.gate_proj.forward_t(x, sub_seed(seed, 4))?;
        let up = self.up_proj.forward_t(x, sub_seed(seed, 5))?;
        self.down_proj
            .forward_t(&ops::swiglu(&gate, &up)?, sub_seed(seed, 6))
    }
}

/// What a decoder layer needs besides its input.
pub(crate) struct LayerStep<'a> {
    pub rope: (&'a Tensor, &'a Tensor),
    pub offset: usize,
    pub seed: Option<u64>,
    pub packed_mask: Option<&'a Tensor>,
    /// Rotary tables and visibility for the fused training attention (forward passes from position 0).
    pub tokens: Option<&'a TokenLayout>,
    pub intermediate_dropout: f32,
}

#[derive(Debug, Clone)]
pub(crate) struct DecoderLayer {
    pub(super) input_layernorm: RmsNorm,
    pub(super) self_attn: Attention,
    pub(super) post_attention_layernorm: RmsNorm,
    pub(super) mlp: Mlp,
}

impl DecoderLayer {
    /// `x` + attention + MLP (pre-norm residual blocks).
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        cache: Option<(&mut KvCache, usize)>,
        step: &LayerStep,
    ) -> Result<Tensor> {
        let h = self.input_layernorm.forward(x)?;
        let h = self.self_attn.forward(&h, cache, step)?;
        let x = (x + intermediate_dropout(&h, step.intermediate_dropout, step.seed, 7)?)?;
        let h = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&x)?, step.seed)?;
        Ok((x + intermediate_dropout(&h, step.intermediate_dropout, step.seed, 8)?)?)
    }

    /// The layer's adapter parameters.
    pub(crate) fn lora_vars(&self) -> Vec<candle_core::Var> {
        let a = &self.self_attn;
        let m = &self.mlp;
        [
            &a.q_proj,
            &a.k_proj,
            &a.v_proj,
            &a.o_proj,
            &m.gate_proj,
            &m.up_proj,
            &m.down_proj,
        ]
        .into_iter()
        .filter_map(|l| l.lora())
        .flat_map(|l| [Some(l.a.clone()), Some(l.b.clone()), l.magnitude.clone()])
        .flatten()
        .collect()
    }

    fn load(
        weights: &Weights,
        layer: usize,
        cfg: &ModelConfig,
        storage: Storage,
        device: &Device,
    ) -> Result<Self> {
        // Norms stay in the compute dtype (f32 unless mixed precision), whatever the linear weights' storage.
        let dtype = storage.0;
        let p = format!("model.layers.{layer}");
        Ok(Self {
            input_layernorm: RmsNorm::load(
                weights,
                &format!("{p}.input_layernorm.weight"),
                cfg,
                dtype,
                device,
            )?,
            self_attn: Attention::load(weights, &format!("{p}.self_attn"), cfg, storage, device)?,
            post_attention_layernorm: RmsNorm::load(
                weights,
                &format!("{p}.post_attention_layernorm.weight"),
                cfg,
                dtype,
                device,
            )?,
            mlp: Mlp::load(weights, &format!("{p}.mlp"), cfg, storage, device)?,
        })
    }
}

fn intermediate_dropout(h: &Tensor, p: f32, seed: Option<u64>, salt: u64) -> Result<Tensor> {
    match sub_seed(seed, salt) {
        Some(seed) if p > 0.0 => {
            let dtype = h.dtype();
            let out = crate::lora::dropout(&h.to_dtype(DType::F32)?, p, seed)?;
            Ok(out.to_dtype(dtype)?)
        }
        _ => Ok(h.clone()),
    }
}

fn neftune_noise(x: &Tensor, alpha: f64, seed: u64) -> Result<Tensor> {
    use rand::{Rng, SeedableRng};
    let (_, t, h) = x.dims3()?;
    let scale = (alpha / ((t * h) as f64).sqrt()) as f32;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let noise: Vec<f32> = (0..x.elem_count())
        .map(|_| rng.random_range(-scale..scale))
        .collect();
    let noise = Tensor::from_vec(noise, x.shape(), x.device())?.to_dtype(x.dtype())?;
    Ok((x + noise)?)
}

/// A Llama-family causal language model.
#[derive(Debug, Clone)]
pub struct Llama {
    cfg: ModelConfig,
    pub(super) embed_tokens: Tensor,
    pub(super) layers: Vec<DecoderLayer>,
    pub(super) norm: RmsNorm,
    pub(super) lm_head: Linear,
    /// The LM head is the embedding's buffer (tied embeddings without an `lm_head.weight` on disk).
    pub(super) lm_head_shares_embedding: bool,
    pub(super) rotary: RotaryEmbedding,
    dtype: DType,
}

impl Llama {
    /// Builds the model from `weights` in compute dtype `dtype`, layer by layer, with the decoder layers' linear
    /// weights stored as `quantization` says (the embedding, norms and LM head stay in `dtype`, as bitsandbytes
    /// keeps them).
    pub fn load(
        cfg: &ModelConfig,
        weights: &Weights,
        dtype: DType,
        quantization: Quantization,
        device: &Device,
    ) -> Result<Self> {
        let embed_shape = weights.shape("model.embed_tokens.weight")?;
        if embed_shape.len() != 2 || embed_shape[1] != cfg.hidden_size {
            return Err(Error::ShapeMismatch {
                name: "model.embed_tokens.weight".into(),
                expected: vec![cfg.vocab_size, cfg.hidden_size],
                actual: embed_shape,
            });
        }
        // transformers builds the embedding with `vocab_size` rows and refuses other checkpoints; so do we.
        let vocab = embed_shape[0];
        if vocab != cfg.vocab_size {
            return Err(Error::ConfigVocabMismatch {
                dir: weights.dir().to_path_buf(),
                config: cfg.vocab_size,
                embedding: vocab,
            });
        }
        let embed_tokens = weights.load("model.embed_tokens.weight", None, dtype, device)?;
        let layers = (0..cfg.num_layers)
            .map(|i| DecoderLayer::load(weights, i, cfg, (dtype, quantization), device))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(weights, "model.norm.weight", cfg, dtype, device)?;
        let lm_head_shares_embedding =
            cfg.tie_word_embeddings && !weights.contains("lm_head.weight");
        let lm_head = if lm_head_shares_embedding {
            Linear::new(embed_tokens.clone(), None)
        } else {
            Linear::load(
                weights,
                "lm_head",
                (vocab, cfg.hidden_size),
                false,
                (dtype, Quantization::None),
                device,
            )?
        };
        let rotary =
            RotaryEmbedding::new(cfg, cfg.max_position_embeddings.min(4096), dtype, device)?;
        Ok(Self {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            lm_head_shares_embedding,
            rotary,
            dtype,
        })
    }

    /// Bytes the frozen weights occupy: `(decoder layers' linear weights, everything else)` — the embedding and
    /// a tied LM head share one buffer and are counted once.
    pub fn frozen_weight_bytes(&self) -> (usize, usize) {
        let bytes = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        let mut linears = 0;
        let mut other = bytes(&self.embed_tokens) + bytes(&self.norm.weight);
        for (_, _, linear) in self.linears() {
            linears += linear.weight().storage_bytes();
            other += linear.bias().map_or(0, bytes);
        }
        for layer in &self.layers {
            other += bytes(&layer.input_layernorm.weight)
                + bytes(&layer.post_attention_layernorm.weight);
        }
        if !self.lm_head_shares_embedding {
            other += self.lm_head.weight().storage_bytes();
        }
        (linears, other)
    }

    /// A view of this model for inference: it shares every weight (adapters and trained backbone weights
    /// included, so it sees later training steps) but computes from detached tensors, so a forward pass records
    /// no autograd graph. Without it, each activation — and through the KV cache, every earlier step's — would stay alive
    /// until the output is dropped, as training needs.
    pub fn for_inference(&self) -> Llama {
        let mut model = self.clone();
        model.detach_backbone();
        for (_, _, linear) in model.linears_mut() {
            if let Some(lora) = linear.lora() {
                let mut lora = lora.clone();
                lora.detached = true;
                linear.set_lora(Some(lora));
            }
        }
        model
    }

    /// A view of this model with every adapter switched off: the backbone alone, sharing its weights (no copy).
    /// Preference tuning's reference model under LoRA; its forward passes record no autograd graph. Under full
    /// fine-tuning it would see the trained weights: take [`Llama::frozen_copy`] before training instead.
    pub fn without_adapters(&self) -> Llama {
        let mut model = self.clone();
        model.detach_backbone();
        for (_, _, linear) in model.linears_mut() {
            linear.set_lora(None);
        }
        model
    }

    /// The resolved configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Rows of the embedding (the usable vocabulary size).
    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.dims()[0]
    }

    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.embed_tokens.device()
    }

    /// Final hidden states `(batch, seq, hidden)` for `input_ids` `(batch, seq)` (u32), appending to `cache`.
    pub fn hidden_states(&self, input_ids: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.hidden_states_with(input_ids, cache, &ForwardOptions::default())
    }

    /// [`Self::hidden_states`] with training options (adapter dropout, NEFTune noise).
    pub fn hidden_states_with(
        &self,
        input_ids: &Tensor,
        mut cache: Option<&mut KvCache>,
        options: &ForwardOptions,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let offset = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        // Forward passes without a cache use the fused attention, which reads the rotary tables per token and
        // needs no mask; the composed attention (a cache, or 16-bit compute) takes the packed rows' mask.
        let fused_attention =
            cache.is_none() && self.dtype == DType::F32 && input_ids.device().is_cpu();
        let (cos, sin, packed_mask) = match &options.packing {
            Some(p) => {
                let longest =
                    p.position_ids.iter().flatten().copied().max().unwrap_or(0) as usize + 1;
                let (cos, sin) = self.rotary.cos_sin(0, longest)?;
                let flat: Vec<u32> = p.position_ids.iter().flatten().copied().collect();
                let idx = Tensor::from_vec(flat, b * t, input_ids.device())?;
                let d = cos.dim(1)?;
                let gather = |table: &Tensor| -> Result<Tensor> {
                    Ok(table.index_select(&idx, 0)?.reshape((b, 1, t, d))?)
                };
                let n_rep = self.cfg.num_heads / self.cfg.num_kv_heads;
                (
                    gather(&cos)?,
                    gather(&sin)?,
                    (!fused_attention)
                        .then(|| p.mask(n_rep, self.dtype, input_ids.device()))
                        .transpose()?,
                )
            }
            None => {
                let (cos, sin) = self.rotary.cos_sin(offset, t)?;
                (cos, sin, None)
            }
        };
        let tokens = if fused_attention {
            Some(TokenLayout {
                cos: cos.flatten_all()?.to_vec1::<f32>()?,
                sin: sin.flatten_all()?.to_vec1::<f32>()?,
                per_token: options.packing.is_some(),
                sequence_ids: options.packing.as_ref().map(|p| p.sequence_ids.clone()),
            })
        } else {
            None
        };
        let mut x = self
            .embed_tokens
            .index_select(&input_ids.flatten_all()?, 0)?
            .reshape((b, t, self.cfg.hidden_size))?;
        if let Some((alpha, seed)) = options.neftune {
            x = neftune_noise(&x, alpha, seed)?;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let step = LayerStep {
                rope: (&cos, &sin),
                offset,
                seed: sub_seed(options.dropout_seed, 100 + i as u64),
                packed_mask: packed_mask.as_ref(),
                tokens: tokens.as_ref(),
                intermediate_dropout: options.intermediate_dropout,
            };
            x = match (&options.checkpointing, cache.is_none() && x.track_op()) {
                (Some(grads), true) => super::checkpointing::checkpointed(layer, &x, &step, grads)?,
                _ => layer.forward(&x, cache.as_deref_mut().map(|c| (c, i)), &step)?,
            };
        }
        self.norm.forward(&x)
    }

    /// Every adaptable linear layer with its module path and short name.
    pub fn linears(&self) -> Vec<(String, &'static str, &Linear)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let (a, m) = (&layer.self_attn, &layer.mlp);
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.self_attn.q_proj"), "q_proj", &a.q_proj));
            out.push((format!("{p}.self_attn.k_proj"), "k_proj", &a.k_proj));
            out.push((format!("{p}.self_attn.v_proj"), "v_proj", &a.v_proj));
            out.push((format!("{p}.self_attn.o_proj"), "o_proj", &a.o_proj));
            out.push((format!("{p}.mlp.gate_proj"), "gate_proj", &m.gate_proj));
            out.push((format!("{p}.mlp.up_proj"), "up_proj", &m.up_proj));
            out.push((format!("{p}.mlp.down_proj"), "down_proj", &m.down_proj));
        }
        out
    }

    /// Every adaptable linear layer with its module path (`model.layers.0.self_attn.q_proj`) and short name.
    pub fn linears_mut(&mut self) -> Vec<(String, &'static str, &mut Linear)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let a = &mut layer.self_attn;
            let m = &mut layer.mlp;
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.self_attn.q_proj"), "q_proj", &mut a.q_proj));
            out.push((format!("{p}.self_attn.k_proj"), "k_proj", &mut a.k_proj));
            out.push((format!("{p}.self_attn.v_proj"), "v_proj", &mut a.v_proj));
            out.push((format!("{p}.self_attn.o_proj"), "o_proj", &mut a.o_proj));
            out.push((format!("{p}.mlp.gate_proj"), "gate_proj", &mut m.gate_proj));
            out.push((format!("{p}.mlp.up_proj"), "up_proj", &mut m.up_proj));
            out.push((format!("{p}.mlp.down_proj"), "down_proj", &mut m.down_proj));
        }
        out
    }

    /// Logits `(..., vocab)` in f32 for hidden states `(..., hidden)`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.lm_head.forward(hidden)?.to_dtype(DType::F32)?)
    }

    /// Logits `(batch, seq, vocab)` in f32 for every position of `input_ids` `(batch, seq)`.
    pub fn forward(&self, input_ids: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let hidden = self.hidden_states(input_ids, cache)?;
        self.logits(&hidden)
    }

    /// Logits `(batch, vocab)` in f32 of the last position only (what generation needs).
    pub fn forward_last(&self, input_ids: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let hidden = self.hidden_states(input_ids, cache)?;
        let t = hidden.dim(1)?;
        self.logits(&hidden.narrow(1, t - 1, 1)?.squeeze(1)?)
    }

    /// A fresh KV cache sized for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.num_layers)
    }

    /// Log-probabilities `(seq-1)` of each next token of the 1-D `ids` given its prefix (f32).
    pub fn token_log_probs(&self, ids: &[u32]) -> Result<Vec<f32>> {
        if ids.len() < 2 {
            return Ok(Vec::new());
        }
        let input = Tensor::new(ids, self.device())?.unsqueeze(0)?;
        let logits = self.forward(&input, None)?.squeeze(0)?; // (t, v)
        let t = ids.len();
        let logits = logits.narrow(0, 0, t - 1)?;
        let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let targets = Tensor::new(&ids[1..], self.device())?.unsqueeze(1)?;
        Ok(log_probs
            .gather(&targets, 1)?
            .squeeze(1)?
            .to_vec1::<f32>()?)
    }
}
