//! `config.json` of a Hugging Face backbone, as written, and the resolved [`ModelConfig`] the decoder runs on.
//!
//! [`HfConfig`] uses the checkpoint's keys exactly (both the classic `rope_theta`/`rope_scaling` and
//! transformers 5's `rope_parameters`); [`ModelConfig::from_hf`] settles defaults and variations once, so the
//! model code never looks at optional fields.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The architectures this crate runs, as named in `config.json`'s `architectures`.
pub const SUPPORTED_ARCHITECTURES: [&str; 3] =
    ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"];

pub use ferrotune_data::TokenIds;

/// Rope settings: `rope_scaling` (classic) or `rope_parameters` (transformers 5); all keys optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct HfRopeParameters {
    pub rope_type: Option<String>,
    /// Older configs spell `rope_type` as `type`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub rope_theta: Option<f64>,
    pub factor: Option<f64>,
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    pub original_max_position_embeddings: Option<usize>,
}

/// `config.json` as transformers writes it (only the keys the decoder needs; others are ignored).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct HfConfig {
    pub architectures: Option<Vec<String>>,
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<HfRopeParameters>,
    pub rope_parameters: Option<HfRopeParameters>,
    pub max_position_embeddings: Option<usize>,
    pub tie_word_embeddings: Option<bool>,
    pub attention_bias: Option<bool>,
    pub mlp_bias: Option<bool>,
    pub hidden_act: Option<String>,
    pub sliding_window: Option<usize>,
    pub use_sliding_window: Option<bool>,
    pub bos_token_id: Option<TokenIds>,
    pub eos_token_id: Option<TokenIds>,
    pub pad_token_id: Option<TokenIds>,
}

/// The architecture family variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Mistral,
    Qwen2,
}

impl Architecture {
    /// The `architectures` name transformers uses.
    pub fn hf_name(self) -> &'static str {
        match self {
            Architecture::Llama => "LlamaForCausalLM",
            Architecture::Mistral => "MistralForCausalLM",
            Architecture::Qwen2 => "Qwen2ForCausalLM",
        }
    }
}

/// How rotary frequencies are scaled.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// The resolved decoder configuration: every default settled.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v projections (Qwen2 always; Llama when `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on the output projection (Llama's `attention_bias` also covers o_proj).
    pub o_bias: bool,
    /// Bias on the MLP projections (Llama's `mlp_bias`).
    pub mlp_bias: bool,
    /// Sliding attention window in tokens, when the model uses one.
    pub sliding_window: Option<usize>,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

impl ModelConfig {
    /// Reads and resolves `DIR/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        if !path.is_file() {
            return Err(Error::MissingConfig {
                dir: dir.to_path_buf(),
            });
        }
        let hf: HfConfig = crate::error::read_json(&path)?;
        Self::from_hf(&hf).map_err(|e| match e {
            Error::InvalidConfig { message, .. } => Error::InvalidConfig {
                dir: dir.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Resolves a parsed `config.json`.
    pub fn from_hf(hf: &HfConfig) -> Result<Self> {
        let invalid = |message: String| Error::InvalidConfig {
            dir: Default::default(),
            message,
        };
        let architecture = resolve_architecture(hf)?;
        if let Some(act) = &hf.hidden_act {
            if act != "silu" {
                return Err(invalid(format!(
                    "`hidden_act` is `{act}`; only `silu` is supported"
                )));
            }
        }
        if hf.num_attention_heads == 0 || hf.num_hidden_layers == 0 || hf.hidden_size == 0 {
            return Err(invalid(
                "`num_attention_heads`, `num_hidden_layers` and `hidden_size` must be positive"
                    .into(),
            ));
        }
        let num_kv_heads = hf.num_key_value_heads.unwrap_or(hf.num_attention_heads);
        if num_kv_heads == 0 || !hf.num_attention_heads.is_multiple_of(num_kv_heads) {
            return Err(invalid(format!(
                "`num_attention_heads` ({}) must be a multiple of `num_key_value_heads` ({num_kv_heads})",
                hf.num_attention_heads
            )));
        }
        let head_dim = hf
            .head_dim
            .unwrap_or(hf.hidden_size / hf.num_attention_heads);
        if !head_dim.is_multiple_of(2) {
            return Err(invalid(format!(
                "`head_dim` ({head_dim}) must be even for rotary embeddings"
            )));
        }
        let rope = hf.rope_parameters.as_ref().or(hf.rope_scaling.as_ref());
        let rope_theta = hf
            .rope_theta
            .or(hf.rope_parameters.as_ref().and_then(|p| p.rope_theta))
            .unwrap_or(10_000.0);
        let rope_scaling = resolve_rope_scaling(rope).map_err(invalid)?;
        let max_position_embeddings = hf.max_position_embeddings.unwrap_or(2048);
        let (qkv_bias, o_bias) = match architecture {
            Architecture::Qwen2 => (true, false),
            _ => {
                let b = hf.attention_bias.unwrap_or(false);
                (b, b)
            }
        };
        let sliding_window = match architecture {
            Architecture::Mistral => hf.sliding_window,
            Architecture::Qwen2 if hf.use_sliding_window == Some(true) => hf.sliding_window,
            _ => None,
        }
        .filter(|w| *w < max_position_embeddings);
        Ok(ModelConfig {
            architecture,
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_layers: hf.num_hidden_layers,
            num_heads: hf.num_attention_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: hf.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings,
            tie_word_embeddings: hf.tie_word_embeddings.unwrap_or(false),
            qkv_bias,
            o_bias,
            mlp_bias: hf.mlp_bias.unwrap_or(false),
            sliding_window,
            bos_token_id: hf
                .bos_token_id
                .as_ref()
                .and_then(|t| t.to_vec().first().copied()),
            eos_token_ids: hf
                .eos_token_id
                .as_ref()
                .map(TokenIds::to_vec)
                .unwrap_or_default(),
        })
    }

    /// Number of parameters of the decoder (embedding counted once when tied).
    pub fn num_parameters(&self) -> usize {
        let (h, i, d) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let q = h * self.num_heads * d;
        let kv = 2 * h * self.num_kv_heads * d;
        let o = self.num_heads * d * h;
        let bias = if self.qkv_bias {
            (self.num_heads + 2 * self.num_kv_heads) * d
        } else {
            0
        } + if self.o_bias { h } else { 0 };
        let mlp = 3 * h * i + if self.mlp_bias { 2 * i + h } else { 0 };
        let layer = q + kv + o + bias + mlp + 2 * h;
        let embed = self.vocab_size * h;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + head + self.num_layers * layer + h
    }
}

fn resolve_architecture(hf: &HfConfig) -> Result<Architecture> {
    let named = hf.architectures.as_ref().and_then(|a| a.first().cloned());
    let by_name = |name: &str| match name {
        "LlamaForCausalLM" => Some(Architecture::Llama),
        "MistralForCausalLM" => Some(Architecture::Mistral),
        "Qwen2ForCausalLM" => Some(Architecture::Qwen2),
        _ => None,
    };
    let by_type = |t: &str| match t {
        "llama" => Some(Architecture::Llama),
        "mistral" => Some(Architecture::Mistral),
        "qwen2" => Some(Architecture::Qwen2),
        _ => None,
    };
    // transformers 5 may leave `architectures` null: fall back to `model_type`.
    let resolved = match &named {
        Some(name) => by_name(name),
        None => hf.model_type.as_deref().and_then(by_type),
    };
    resolved.ok_or_else(|| Error::UnsupportedArchitecture {
        name: named
            .or_else(|| hf.model_type.clone())
            .unwrap_or_else(|| "<none given>".into()),
        supported: SUPPORTED_ARCHITECTURES
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn resolve_rope_scaling(p: Option<&HfRopeParameters>) -> std::result::Result<RopeScaling, String> {
    let Some(p) = p else {
        return Ok(RopeScaling::None);
    };
    let kind = p
        .rope_type
        .as_deref()
        .or(p.kind.as_deref())
        .unwrap_or("default");
    let factor = || {
        p.factor
            .ok_or_else(|| format!("rope type `{kind}` needs `factor`"))
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear { factor: factor()? }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: factor()?,
            low_freq_factor: p.low_freq_factor.unwrap_or(1.0),
            high_freq_factor: p.high_freq_factor.unwrap_or(4.0),
            original_max_position_embeddings: p
                .original_max_position_embeddings
                .ok_or("rope type `llama3` needs `original_max_position_embeddings`")?,
        }),
        other => Err(format!(
            "rope scaling type `{other}` is not supported (supported: default, linear, llama3)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "vocab_size": 32, "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2
        })
    }

    fn parse(v: serde_json::Value) -> Result<ModelConfig> {
        ModelConfig::from_hf(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn defaults_are_resolved() {
        let c = parse(base()).unwrap();
        assert_eq!(c.head_dim, 4);
        assert_eq!(c.rope_theta, 10_000.0);
        assert_eq!(c.rope_scaling, RopeScaling::None);
        assert!(!c.qkv_bias);
    }

    #[test]
    fn rope_parameters_of_transformers_5_are_read() {
        let mut v = base();
        v["architectures"] = serde_json::Value::Null;
        v["model_type"] = "llama".into();
        v["rope_parameters"] = serde_json::json!({"rope_type": "llama3", "rope_theta": 500000.0,
            "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192});
        let c = parse(v).unwrap();
        assert_eq!(c.rope_theta, 500_000.0);
        assert!(matches!(c.rope_scaling, RopeScaling::Llama3 { factor, .. } if factor == 8.0));
    }

    #[test]
    fn unsupported_architecture_lists_supported_ones() {
        let mut v = base();
        v["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
        let msg = parse(v).unwrap_err().to_string();
        assert!(
            msg.contains("GPT2LMHeadModel") && msg.contains("Qwen2ForCausalLM"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_rope_type_is_an_error() {
        let mut v = base();
        v["rope_scaling"] = serde_json::json!({"type": "yarn", "factor": 4.0});
        assert!(parse(v).unwrap_err().to_string().contains("yarn"));
    }

    #[test]
    fn qwen2_has_qkv_bias() {
        let mut v = base();
        v["architectures"] = serde_json::json!(["Qwen2ForCausalLM"]);
        let c = parse(v).unwrap();
        assert!(c.qkv_bias && !c.o_bias);
    }
}

/// Parameter counts of a model, split by how they are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterCounts {
    /// Weights of the decoder layers' seven linear projections (what int8/int4 quantize and LoRA adapts).
    pub decoder_linears: usize,
    /// Embedding, LM head (when not tied), norms and biases.
    pub other: usize,
}

impl ParameterCounts {
    /// All parameters.
    pub fn total(&self) -> usize {
        self.decoder_linears + self.other
    }
}

impl ModelConfig {
    /// `(out, in)` of each adaptable projection of one decoder layer, by module name.
    pub fn linear_shapes(&self) -> [(&'static str, (usize, usize)); 7] {
        let (h, i, d) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let (q, kv) = (self.num_heads * d, self.num_kv_heads * d);
        [
            ("q_proj", (q, h)),
            ("k_proj", (kv, h)),
            ("v_proj", (kv, h)),
            ("o_proj", (h, q)),
            ("gate_proj", (i, h)),
            ("up_proj", (i, h)),
            ("down_proj", (h, i)),
        ]
    }

    /// How many parameters the model has (from the config alone, before loading anything).
    pub fn parameter_counts(&self) -> ParameterCounts {
        let per_layer: usize = self.linear_shapes().iter().map(|(_, (o, i))| o * i).sum();
        let (h, d) = (self.hidden_size, self.head_dim);
        let mut biases = 0;
        if self.qkv_bias {
            biases += (self.num_heads + 2 * self.num_kv_heads) * d;
        }
        if self.o_bias {
            biases += h;
        }
        if self.mlp_bias {
            biases += 2 * self.intermediate_size + h;
        }
        let embedding = self.vocab_size * h;
        let head = if self.tie_word_embeddings {
            0
        } else {
            embedding
        };
        ParameterCounts {
            decoder_linears: per_layer * self.num_layers,
            other: embedding + head + self.num_layers * (2 * h + biases) + h,
        }
    }
}
