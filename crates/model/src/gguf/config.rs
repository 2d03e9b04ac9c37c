//! The architecture and hyper-parameters of a GGUF file, and the `config.json` they make.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use super::reader::GgufFile;
use super::GgufError;

/// The GGUF architectures this importer converts (`general.architecture`).
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "qwen2"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama, and everything llama.cpp writes as `llama` (Mistral, SmolLM, TinyLlama, ...).
    Llama,
    Qwen2,
}

impl Arch {
    pub fn gguf_name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
    pub fn hf_class(self) -> &'static str {
        match self {
            Arch::Llama => "LlamaForCausalLM",
            Arch::Qwen2 => "Qwen2ForCausalLM",
        }
    }
}

/// The model shape, read from `<arch>.*` metadata and checked against the tensors.
#[derive(Debug, Clone)]
pub struct Hparams {
    pub arch: Arch,
    pub n_layers: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Write `head_dim` into config.json (the file states it).
    pub explicit_head_dim: bool,
    pub rms_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Json>,
    pub context_length: usize,
    /// Rows of `token_embd.weight`.
    pub vocab_rows: usize,
    pub tied: bool,
    pub attention_bias: bool,
}

pub fn architecture(file: &GgufFile) -> Result<Arch, GgufError> {
    let name = file.str("general.architecture")?;
    match name {
        "llama" => Ok(Arch::Llama),
        "qwen2" => Ok(Arch::Qwen2),
        other => Err(GgufError::UnsupportedArchitecture {
            path: file.path().to_path_buf(),
            architecture: other.to_string(),
        }),
    }
}

pub fn read_hparams(
    file: &GgufFile,
    arch: Arch,
    warnings: &mut Vec<String>,
) -> Result<Hparams, GgufError> {
    let a = arch.gguf_name();
    let key = |k: &str| format!("{a}.{k}");
    let n_layers = file.usize(&key("block_count"))?;
    let hidden = file.usize(&key("embedding_length"))?;
    let ffn = file.usize(&key("feed_forward_length"))?;
    let n_heads = file.usize(&key("attention.head_count"))?;
    let n_kv_heads = file
        .opt_usize(&key("attention.head_count_kv"))?
        .unwrap_or(n_heads);
    let rms_eps = file.f64(&key("attention.layer_norm_rms_epsilon"))?;
    let rope_theta = file.opt_f64(&key("rope.freq_base"))?.unwrap_or(10000.0);
    let context_length = file.usize(&key("context_length"))?;
    let key_length = file.opt_usize(&key("attention.key_length"))?;
    // transformers reads llama's `rope.dimension_count` as head_dim; for qwen2 it ignores it.
    let rope_dim = match arch {
        Arch::Llama => file.opt_usize(&key("rope.dimension_count"))?,
        Arch::Qwen2 => None,
    };
    let bad = |detail: String| GgufError::BadHyperparameters {
        path: file.path().to_path_buf(),
        detail,
    };
    if n_heads == 0 || n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
        return Err(bad(format!(
            "`{a}.attention.head_count` = {n_heads} is not a multiple of `{a}.attention.head_count_kv` = {n_kv_heads}"
        )));
    }
    let head_dim = match key_length.or(rope_dim) {
        Some(d) => d,
        None if hidden % n_heads == 0 => hidden / n_heads,
        None => {
            return Err(bad(format!(
                "hidden size {hidden} is not divisible by {n_heads} heads"
            )))
        }
    };
    if head_dim == 0 || head_dim % 2 != 0 {
        return Err(bad(format!("head dimension {head_dim} is not even")));
    }
    if let Some(v) = file.opt_usize(&key("attention.value_length"))? {
        if v != head_dim {
            return Err(bad(format!(
                "`{a}.attention.value_length` = {v} differs from the key length {head_dim}"
            )));
        }
    }

    let embd = file
        .tensor_info("token_embd.weight")
        .ok_or_else(|| GgufError::MissingTensor {
            path: file.path().to_path_buf(),
            tensor: "token_embd.weight".into(),
        })?;
    if embd.shape.len() != 2 || embd.shape[1] != hidden {
        return Err(GgufError::TensorShape {
            path: file.path().to_path_buf(),
            tensor: embd.name.clone(),
            expected: format!("[vocab, {hidden}]"),
            found: embd.shape.clone(),
        });
    }
    let vocab_rows = embd.shape[0];
    let tied = file.tensor_info("output.weight").is_none();
    let attention_bias = match arch {
        Arch::Qwen2 => true,
        Arch::Llama => file.tensor_info("blk.0.attn_q.bias").is_some(),
    };

    let rope_scaling = rope_scaling(file, arch, head_dim, rope_theta, warnings)?;
    Ok(Hparams {
        arch,
        n_layers,
        hidden,
        ffn,
        n_heads,
        n_kv_heads,
        head_dim,
        explicit_head_dim: key_length.is_some() || rope_dim.is_some(),
        rms_eps,
        rope_theta,
        rope_scaling,
        context_length,
        vocab_rows,
        tied,
        attention_bias,
    })
}

/// `rope_scaling` for config.json from `<arch>.rope.scaling.*`, the older `<arch>.rope.scale_linear`,
/// or (Llama 3.1+) the `rope_freqs.weight` tensor of per-frequency factors.
fn rope_scaling(
    file: &GgufFile,
    arch: Arch,
    head_dim: usize,
    theta: f64,
    warnings: &mut Vec<String>,
) -> Result<Option<Json>, GgufError> {
    let a = arch.gguf_name();
    let kind = file.opt_str(&format!("{a}.rope.scaling.type"))?;
    let factor = file.opt_f64(&format!("{a}.rope.scaling.factor"))?;
    let original = file.opt_usize(&format!("{a}.rope.scaling.original_context_length"))?;
    let unsupported = |kind: &str| GgufError::UnsupportedRopeScaling {
        path: file.path().to_path_buf(),
        kind: kind.to_string(),
    };
    let scaling = match (kind, factor) {
        (None | Some("none"), _) => file
            .opt_f64(&format!("{a}.rope.scale_linear"))?
            .filter(|&f| f != 1.0)
            .map(|f| json!({"rope_type": "linear", "factor": f})),
        (Some("linear"), Some(f)) => Some(json!({"rope_type": "linear", "factor": f})),
        (Some("yarn"), Some(f)) => {
            let mut s = json!({"rope_type": "yarn", "factor": f});
            if let Some(o) = original {
                s["original_max_position_embeddings"] = json!(o);
            }
            Some(s)
        }
        (Some(k), _) => return Err(unsupported(k)),
    };
    if let Some(info) = file.tensor_info("rope_freqs.weight") {
        if scaling.is_some() {
            return Err(unsupported("rope_freqs.weight together with rope.scaling"));
        }
        let (_, freqs) = file.read_tensor_f32(&info.name)?;
        match llama3_scaling(&freqs, head_dim, theta) {
            Some(s) => return Ok(Some(s)),
            None => {
                return Err(unsupported(
                    "rope_freqs.weight (per-frequency factors that are not Llama 3's)",
                ))
            }
        }
    }
    if scaling.is_none() && kind.is_none() && factor.is_some() {
        warnings.push(format!(
            "`{a}.rope.scaling.factor` is set without `{a}.rope.scaling.type`; ignored"
        ));
    }
    Ok(scaling)
}

/// Recover Llama 3's `rope_scaling` from the factors llama.cpp's converter baked into
/// `rope_freqs.weight`: try the published parameter sets and keep the one that reproduces them.
/// Llama 3.1's per-frequency rope factors (`rope_freqs.weight`, what llama.cpp's converter writes), one per
/// pair of dimensions: 1 for short wavelengths, `factor` for long ones, smoothly in between.
pub fn llama3_rope_factors(
    head_dim: usize,
    theta: f64,
    factor: f64,
    low: f64,
    high: f64,
    original: usize,
) -> Vec<f64> {
    let low_wavelen = original as f64 / low;
    let high_wavelen = original as f64 / high;
    (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / theta.powf((2 * i) as f64 / head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth = (original as f64 / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect()
}

fn llama3_scaling(freqs: &[f32], head_dim: usize, theta: f64) -> Option<Json> {
    if freqs.len() * 2 != head_dim {
        return None;
    }
    let mut candidates = vec![
        (8.0, 1.0, 4.0, 8192usize),
        (32.0, 1.0, 4.0, 8192),
        (16.0, 1.0, 4.0, 8192),
        (4.0, 1.0, 4.0, 8192),
    ];
    // Other original lengths: with Llama 3's low/high factors (1, 4), a factor between 1 and the largest one
    // gives the original length back from its wavelength.
    let factor = freqs.iter().fold(1f32, |m, &f| m.max(f)) as f64;
    if let Some((i, &f)) = freqs
        .iter()
        .enumerate()
        .find(|(_, &f)| f as f64 > 1.0 + 1e-4 && (f as f64) < factor - 1e-4)
    {
        let wavelen = 2.0 * std::f64::consts::PI * theta.powf((2 * i) as f64 / head_dim as f64);
        let smooth = (1.0 / f as f64 - 1.0 / factor) / (1.0 - 1.0 / factor);
        let original = (wavelen * (smooth * 3.0 + 1.0)).round() as usize;
        candidates.push((factor, 1.0, 4.0, original));
    } else if let Some(k) = freqs.iter().position(|&f| f as f64 >= factor - 1e-4) {
        // Only 1s then `factor`s: any original length between 4× the last short wavelength and the first long
        // one gives the same factors; the largest integer below the first long wavelength is one.
        let wavelen = 2.0 * std::f64::consts::PI * theta.powf((2 * k) as f64 / head_dim as f64);
        candidates.push((
            factor,
            1.0,
            4.0,
            (wavelen.ceil() as usize).saturating_sub(1),
        ));
    }
    candidates
        .iter()
        .find_map(|&(factor, low, high, original)| {
            let wanted = llama3_rope_factors(head_dim, theta, factor, low, high, original);
            let ok = freqs
                .iter()
                .zip(&wanted)
                .all(|(&got, &want)| (got as f64 - want).abs() <= 1e-3 * want);
            ok.then(|| {
                json!({"rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                   "high_freq_factor": high, "original_max_position_embeddings": original})
            })
        })
}

/// config.json for the Hugging Face model class.
pub fn config_json(h: &Hparams, special: &BTreeMap<&'static str, Option<u32>>) -> Json {
    let mut c = json!({
        "architectures": [h.arch.hf_class()],
        "model_type": h.arch.gguf_name(),
        "hidden_size": h.hidden,
        "intermediate_size": h.ffn,
        "num_hidden_layers": h.n_layers,
        "num_attention_heads": h.n_heads,
        "num_key_value_heads": h.n_kv_heads,
        "rms_norm_eps": h.rms_eps,
        "rope_theta": h.rope_theta,
        "max_position_embeddings": h.context_length,
        "vocab_size": h.vocab_rows,
        "tie_word_embeddings": h.tied,
        "torch_dtype": "float32",
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "attention_dropout": 0.0,
        "use_cache": true,
    });
    if h.explicit_head_dim {
        c["head_dim"] = json!(h.head_dim);
    }
    if let Some(s) = &h.rope_scaling {
        c["rope_scaling"] = s.clone();
    }
    match h.arch {
        Arch::Llama => {
            c["attention_bias"] = json!(h.attention_bias);
            c["mlp_bias"] = json!(false);
        }
        Arch::Qwen2 => {
            c["use_sliding_window"] = json!(false);
            c["max_window_layers"] = json!(h.n_layers);
        }
    }
    for (name, id) in special {
        if matches!(*name, "bos_token_id" | "eos_token_id" | "pad_token_id") {
            c[*name] = json!(id);
        }
    }
    c
}
