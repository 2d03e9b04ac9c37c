//! GGUF tensors → Hugging Face tensors (names, shapes, the inverse of llama.cpp's Q/K RoPE
//! permutation), streamed into one float32 `model.safetensors`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::{json, Value as Json};

use super::config::{Arch, Hparams};
use super::reader::GgufFile;
use super::GgufError;

/// The tensors of every decoder layer: (llama.cpp's name after `blk.N.`, transformers' after
/// `model.layers.N.`), without the `.weight` / `.bias` suffix.
pub const LAYER_TENSORS: &[(&str, &str)] = &[
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// The tensors outside the layers: (llama.cpp's name, transformers').
pub const GLOBAL_TENSORS: &[(&str, &str)] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// transformers' name of layer `l`'s tensor `gguf` (e.g. `attn_q.weight` → `model.layers.l.self_attn.q_proj.weight`).
fn hf_layer_tensor(l: usize, gguf: &str) -> String {
    let (module, kind) = gguf.rsplit_once('.').unwrap_or((gguf, "weight"));
    let hf = LAYER_TENSORS
        .iter()
        .find(|(g, _)| *g == module)
        .map_or(module, |(_, h)| h);
    format!("model.layers.{l}.{hf}.{kind}")
}

/// llama.cpp's name of a transformers tensor (`model.layers.3.mlp.down_proj.weight` → `blk.3.ffn_down.weight`),
/// or `None` for a tensor llama.cpp's Llama-family models do not have.
pub fn gguf_tensor_name(hf: &str) -> Option<String> {
    if let Some((g, _)) = GLOBAL_TENSORS.iter().find(|(_, h)| *h == hf) {
        return Some(g.to_string());
    }
    let (layer, rest) = hf.strip_prefix("model.layers.")?.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let (g, _) = LAYER_TENSORS.iter().find(|(_, h)| *h == module)?;
    matches!(kind, "weight" | "bias").then(|| format!("blk.{layer}.{g}.{kind}"))
}

/// The layer index of a llama.cpp tensor name (`blk.3.ffn_down.weight` → 3).
pub fn gguf_layer(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split_once('.')?.0.parse().ok()
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
        out.push(Planned {
            gguf,
            hf,
            shape,
            unpermute,
            zeros: false,
        })
    };
    push(
        GLOBAL_TENSORS[0].0.into(),
        GLOBAL_TENSORS[0].1.into(),
        vec![h.vocab_rows, d],
        None,
    );
    for l in 0..h.n_layers {
        let g = |s: &str| format!("blk.{l}.{s}");
        let m = |s: &str| hf_layer_tensor(l, s);
        push(g("attn_norm.weight"), m("attn_norm.weight"), vec![d], None);
        let (pq, pk) = if permute {
            (Some(h.n_heads), Some(h.n_kv_heads))
        } else {
            (None, None)
        };
        push(g("attn_q.weight"), m("attn_q.weight"), vec![q_rows, d], pq);
        push(g("attn_k.weight"), m("attn_k.weight"), vec![kv_rows, d], pk);
        push(
            g("attn_v.weight"),
            m("attn_v.weight"),
            vec![kv_rows, d],
            None,
        );
        push(
            g("attn_output.weight"),
            m("attn_output.weight"),
            vec![d, q_rows],
            None,
        );
        if h.attention_bias {
            push(g("attn_q.bias"), m("attn_q.bias"), vec![q_rows], pq);
            push(g("attn_k.bias"), m("attn_k.bias"), vec![kv_rows], pk);
            push(g("attn_v.bias"), m("attn_v.bias"), vec![kv_rows], None);
            if h.arch == Arch::Llama {
                push(g("attn_output.bias"), m("attn_output.bias"), vec![d], None);
            }
        }
        push(g("ffn_norm.weight"), m("ffn_norm.weight"), vec![d], None);
        push(
            g("ffn_gate.weight"),
            m("ffn_gate.weight"),
            vec![h.ffn, d],
            None,
        );
        push(g("ffn_up.weight"), m("ffn_up.weight"), vec![h.ffn, d], None);
        push(
            g("ffn_down.weight"),
            m("ffn_down.weight"),
            vec![d, h.ffn],
            None,
        );
    }
    push(
        GLOBAL_TENSORS[1].0.into(),
        GLOBAL_TENSORS[1].1.into(),
        vec![d],
        None,
    );
    if !h.tied {
        push(
            GLOBAL_TENSORS[2].0.into(),
            GLOBAL_TENSORS[2].1.into(),
            vec![h.vocab_rows, d],
            None,
        );
    }

    for p in out.iter_mut() {
        match file.tensor_info(&p.gguf) {
            Some(info)
                if info.elem_count() == p.shape.iter().product::<usize>()
                    && squeeze(&info.shape) == squeeze(&p.shape) => {}
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
    let used: HashSet<&str> = out
        .iter()
        .map(|p| p.gguf.as_str())
        .chain(["rope_freqs.weight"])
        .collect();
    if let Some(extra) = file
        .tensors
        .iter()
        .find(|t| !used.contains(t.name.as_str()))
    {
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
    reorder_rows(w, rows, n_head, false)
}

/// llama.cpp's `permute` (what its converter applies to Llama's q/k rows): each head's rows
/// `[first halves; second halves]` (rotate-half) become interleaved pairs. The inverse of [`unpermute_rows`].
pub fn permute_rows(w: &[f32], rows: usize, n_head: usize) -> Vec<f32> {
    reorder_rows(w, rows, n_head, true)
}

/// Row `h·hd + 2j + t` (interleaved) ↔ row `h·hd + t·hd/2 + j` (halves), towards interleaved when `interleave`.
fn reorder_rows(w: &[f32], rows: usize, n_head: usize, interleave: bool) -> Vec<f32> {
    let cols = w.len() / rows;
    let hd = rows / n_head;
    let half = hd / 2;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_head {
        for j in 0..half {
            for t in 0..2 {
                let (interleaved, halves) = (h * hd + 2 * j + t, h * hd + t * half + j);
                let (dst, src) = if interleave {
                    (interleaved, halves)
                } else {
                    (halves, interleaved)
                };
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// Write `plan` into `path` as float32 safetensors, one tensor in memory at a time.
/// Returns the number of parameters written.
pub fn write_safetensors(
    file: &GgufFile,
    plan: &[Planned],
    path: &Path,
) -> Result<usize, GgufError> {
    let io = |source| GgufError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0usize;
    for p in plan {
        let n = p.shape.iter().product::<usize>() * 4;
        header.insert(
            p.hf.clone(),
            json!({"dtype": "F32", "shape": p.shape, "data_offsets": [offset, offset + n]}),
        );
        offset += n;
    }
    let mut header = serde_json::to_vec(&Json::Object(header)).expect("a JSON map serializes");
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut w = BufWriter::with_capacity(1 << 22, File::create(path).map_err(io)?);
    w.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(&header).map_err(io)?;
    let mut n_params = 0;
    let mut buf = Vec::new();
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
        write_f32_le(&mut w, &values, &mut buf).map_err(io)?;
        n_params += n;
    }
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(n_params)
}

/// Write f32 values as little-endian bytes (safetensors' byte order).
fn write_f32_le(w: &mut impl Write, values: &[f32], buf: &mut Vec<u8>) -> std::io::Result<()> {
    if cfg!(target_endian = "little") {
        // SAFETY: any initialized f32 is 4 initialized bytes; u8 has no alignment requirement,
        // and on a little-endian target the in-memory bytes are the little-endian encoding.
        let bytes =
            unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), values.len() * 4) };
        w.write_all(bytes)
    } else {
        for chunk in values.chunks(1 << 14) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
            w.write_all(buf)?;
        }
        Ok(())
    }
}
