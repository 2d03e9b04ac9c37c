//! GGUF import: dequantization against gguf-py, the tiny Llama fixture against transformers' GGUF
//! loader (tokenizer ids, HF tensor layout, Q/K permutation), synthetic files for Qwen2, the
//! SentencePiece tokenizer and RoPE scaling, and every error path (never a panic, nothing left behind).
//!
//! Fixtures: `tests/fixtures/gguf_quants` and `tests/fixtures/gguf_llama`, written by
//! `tools/fixtures/tiny_gguf.py` (see their SOURCE.md). They are committed; a missing one fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ferrotune_model::gguf::{import_gguf, GgufError, GgufFile};
use ferrotune_test_support::{max_abs_diff, read_json};
use safetensors::SafeTensors;
use serde_json::Value;

mod errors;
mod export;
mod fixtures;
mod synthetic;
mod writer;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn f32s(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

/// llama.cpp's converter permutation, written from its numpy form
/// `w.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2).reshape(rows, cols)`: out[h, j, t] = w[h, t, j].
fn llama_cpp_permute(w: &[f32], rows: usize, n_head: usize) -> Vec<f32> {
    let cols = w.len() / rows;
    let (hd, half) = (rows / n_head, rows / n_head / 2);
    let mut out = vec![f32::NAN; w.len()];
    for h in 0..n_head {
        for j in 0..half {
            for t in 0..2 {
                let (dst, src) = (h * hd + j * 2 + t, h * hd + t * half + j);
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}
