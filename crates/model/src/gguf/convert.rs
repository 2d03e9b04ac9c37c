//! Hyper-parameters → `config.json`, and GGUF tensors → Hugging Face tensors (names, shapes, the
//! inverse of llama.cpp's Q/K RoPE permutation), streamed into one float32 `model.safetensors`.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

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

pub fn read_hparams(file: &GgufFile, arch: Arch, warnings: &mut Vec<String>) -> Result<Hparams, GgufError> {
    let a = arch.gguf_name();
    let key = |k: &str| format!("{a}.{k}");
    let n_layers = file.usize(&key("block_count"))?;
    let hidden = file.usize(&key("embedding_length"))?;
    let ffn = file.usize(&key("feed_forward_length"))?;
    let n_heads = file.usize(&key("attention.head_count"))?;
    let n_kv_heads = file.opt_usize(&key("attention.head_count_kv"))?.unwrap_or(n_heads);
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
        None => return Err(bad(format!("hidden size {hidden} is not divisible by {n_heads} heads"))),
    };
    if head_dim == 0 || head_dim % 2 != 0 {
        return Err(bad(format!("head dimension {head_dim} is not even")));
    }
    if let Some(v) = file.opt_usize(&key("attention.value_length"))? {
        if v != head_dim {
            return Err(bad(format!("`{a}.attention.value_length` = {v} differs from the key length {head_dim}")));
        }
    }

    let embd = file.tensor_info("token_embd.weight").ok_or_else(|| GgufError::MissingTensor {
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
            None => return Err(unsupported("rope_freqs.weight (per-frequency factors that are not Llama 3's)")),
        }
    }
    if scaling.is_none() && kind.is_none() && factor.is_some() {
        warnings.push(format!("`{a}.rope.scaling.factor` is set without `{a}.rope.scaling.type`; ignored"));
    }
    Ok(scaling)
}

/// Recover Llama 3's `rope_scaling` from the factors llama.cpp's converter baked into
/// `rope_freqs.weight`: try the published parameter sets and keep the one that reproduces them.
fn llama3_scaling(freqs: &[f32], head_dim: usize, theta: f64) -> Option<Json> {
    if freqs.len() * 2 != head_dim {
        return None;
    }
    let candidates = [(8.0, 1.0, 4.0, 8192usize), (32.0, 1.0, 4.0, 8192), (16.0, 1.0, 4.0, 8192), (4.0, 1.0, 4.0, 8192)];
    candidates.iter().find_map(|&(factor, low, high, original)| {
        let low_wavelen = original as f64 / low;
        let high_wavelen = original as f64 / high;
        let ok = freqs.iter().enumerate().all(|(i, &got)| {
            let freq = 1.0 / theta.powf((2 * i) as f64 / head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            let want = if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth = (original as f64 / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            };
            (got as f64 - want).abs() <= 1e-3 * want
        });
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

/// One tensor to write: where it comes from, its HF name and shape, and the permutation to undo.
#[derive(Debug, Clone)]
pub struct Planned {
    pub gguf: String,
    pub hf: String,
    pub shape: Vec<usize>,
    /// `Some(n_head)`: rows were permuted by llama.cpp for `n_head` heads; undo it.
    pub unpermute: Option<usize>,
    /// No such tensor in the file: write zeros (a Llama `o_proj` bias when only q/k/v have one).
    pub zeros: bool,
}

/// Every tensor of the HF model, checked against the file: all present, right shapes, and no
/// tensor in the file left over.
pub fn plan(file: &GgufFile, h: &Hparams) -> Result<Vec<Planned>, GgufError> {
    let (d, hd) = (h.hidden, h.head_dim);
    let (q_rows, kv_rows) = (h.n_heads * hd, h.n_kv_heads * hd);
    let permute = h.arch == Arch::Llama;
    let mut out = Vec::new();
    let mut push = |gguf: String, hf: String, shape: Vec<usize>, unpermute: Option<usize>| {
        out.push(Planned { gguf, hf, shape, unpermute, zeros: false })
    };
    push("token_embd.weight".into(), "model.embed_tokens.weight".into(), vec![h.vocab_rows, d], None);
    for l in 0..h.n_layers {
        let g = |s: &str| format!("blk.{l}.{s}");
        let m = |s: &str| format!("model.layers.{l}.{s}");
        push(g("attn_norm.weight"), m("input_layernorm.weight"), vec![d], None);
        let (pq, pk) = if permute { (Some(h.n_heads), Some(h.n_kv_heads)) } else { (None, None) };
        push(g("attn_q.weight"), m("self_attn.q_proj.weight"), vec![q_rows, d], pq);
        push(g("attn_k.weight"), m("self_attn.k_proj.weight"), vec![kv_rows, d], pk);
        push(g("attn_v.weight"), m("self_attn.v_proj.weight"), vec![kv_rows, d], None);
        push(g("attn_output.weight"), m("self_attn.o_proj.weight"), vec![d, q_rows], None);
        if h.attention_bias {
            push(g("attn_q.bias"), m("self_attn.q_proj.bias"), vec![q_rows], pq);
            push(g("attn_k.bias"), m("self_attn.k_proj.bias"), vec![kv_rows], pk);
            push(g("attn_v.bias"), m("self_attn.v_proj.bias"), vec![kv_rows], None);
            if h.arch == Arch::Llama {
                push(g("attn_output.bias"), m("self_attn.o_proj.bias"), vec![d], None);
            }
        }
        push(g("ffn_norm.weight"), m("post_attention_layernorm.weight"), vec![d], None);
        push(g("ffn_gate.weight"), m("mlp.gate_proj.weight"), vec![h.ffn, d], None);
        push(g("ffn_up.weight"), m("mlp.up_proj.weight"), vec![h.ffn, d], None);
        push(g("ffn_down.weight"), m("mlp.down_proj.weight"), vec![d, h.ffn], None);
    }
    push("output_norm.weight".into(), "model.norm.weight".into(), vec![d], None);
    if !h.tied {
        push("output.weight".into(), "lm_head.weight".into(), vec![h.vocab_rows, d], None);
    }

    for p in out.iter_mut() {
        match file.tensor_info(&p.gguf) {
            Some(info) if info.elem_count() == p.shape.iter().product::<usize>() && squeeze(&info.shape) == squeeze(&p.shape) => {}
            Some(info) => {
                return Err(GgufError::TensorShape {
                    path: file.path().to_path_buf(),
                    tensor: p.gguf.clone(),
                    expected: format!("{:?}", p.shape),
                    found: info.shape.clone(),
                })
            }
            None if p.gguf.ends_with(".attn_output.bias") => p.zeros = true,
            None => {
                return Err(GgufError::MissingTensor {
                    path: file.path().to_path_buf(),
                    tensor: p.gguf.clone(),
                })
            }
        }
    }
    let used: HashSet<&str> = out.iter().map(|p| p.gguf.as_str()).chain(["rope_freqs.weight"]).collect();
    if let Some(extra) = file.tensors.iter().find(|t| !used.contains(t.name.as_str())) {
        return Err(GgufError::UnexpectedTensor {
            path: file.path().to_path_buf(),
            tensor: extra.name.clone(),
            architecture: h.arch.gguf_name(),
        });
    }
    Ok(out)
}

/// Shapes compare equal ignoring size-1 dimensions (a bias may be stored as [1, n]).
fn squeeze(shape: &[usize]) -> Vec<usize> {
    shape.iter().copied().filter(|&d| d != 1).collect()
}

/// Undo llama.cpp's `permute`: it stored each head's rows as `reshape(2, hd/2).T` (interleaved
/// RoPE pairs); HF wants them as `[first halves; second halves]` (rotate-half). Equivalent to
/// `w.reshape(n_head, hd/2, 2, cols).swapaxes(1, 2).reshape(rows, cols)`.
pub fn unpermute_rows(w: &[f32], rows: usize, n_head: usize) -> Vec<f32> {
    let cols = w.len() / rows;
    let hd = rows / n_head;
    let half = hd / 2;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_head {
        for j in 0..half {
            for t in 0..2 {
                let src = h * hd + 2 * j + t;
                let dst = h * hd + t * half + j;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// Write `plan` into `path` as float32 safetensors, one tensor in memory at a time.
/// Returns the number of parameters written.
pub fn write_safetensors(file: &GgufFile, plan: &[Planned], path: &Path) -> Result<usize, GgufError> {
    let io = |source| GgufError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0usize;
    for p in plan {
        let n = p.shape.iter().product::<usize>() * 4;
        header.insert(p.hf.clone(), json!({"dtype": "F32", "shape": p.shape, "data_offsets": [offset, offset + n]}));
        offset += n;
    }
    let mut header = serde_json::to_vec(&Json::Object(header)).expect("a JSON map serializes");
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut w = BufWriter::with_capacity(1 << 22, File::create(path).map_err(io)?);
    w.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
    w.write_all(&header).map_err(io)?;
    let mut n_params = 0;
    let mut buf = Vec::with_capacity(1 << 16);
    for p in plan {
        let n = p.shape.iter().product::<usize>();
        let values = if p.zeros {
            vec![0f32; n]
        } else {
            let (_, v) = file.read_tensor_f32(&p.gguf)?;
            match p.unpermute {
                Some(n_head) => unpermute_rows(&v, p.shape[0], n_head),
                None => v,
            }
        };
        if values.len() != n {
            return Err(GgufError::TensorShape {
                path: file.path().to_path_buf(),
                tensor: p.gguf.clone(),
                expected: format!("{:?}", p.shape),
                found: vec![values.len()],
            });
        }
        for chunk in values.chunks(1 << 14) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
            w.write_all(&buf).map_err(io)?;
        }
        n_params += n;
    }
    w.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
    Ok(n_params)
}
