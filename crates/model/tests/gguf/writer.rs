//! A minimal GGUF v3 writer for the synthetic test files.

use super::*;

// ---------------------------------------------------------------------------------------------
// Synthetic files
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
pub(crate) enum Kv {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
    F32s(Vec<f32>),
}

/// A minimal GGUF v3 writer (spec: ggml/docs/gguf.md), independent of the importer's reader.
#[derive(Clone, Default)]
pub(crate) struct Builder {
    pub(crate) kvs: Vec<(String, Kv)>,
    /// name, row-major shape, ggml type id, data
    pub(crate) tensors: Vec<(String, Vec<usize>, u32, Vec<u8>)>,
}

impl Builder {
    pub(crate) fn kv(mut self, key: &str, v: Kv) -> Self {
        self.kvs.retain(|(k, _)| k != key);
        self.kvs.push((key.into(), v));
        self
    }
    pub(crate) fn without(mut self, key: &str) -> Self {
        self.kvs.retain(|(k, _)| k != key);
        self.tensors.retain(|(n, ..)| n != key);
        self
    }
    pub(crate) fn f32_tensor(mut self, name: &str, shape: &[usize]) -> Self {
        let n: usize = shape.iter().product();
        let seed = name.bytes().map(u32::from).sum::<u32>() as f32;
        let data = (0..n)
            .flat_map(|i| ((i as f32 * 0.37 + seed).sin() * 0.5).to_le_bytes())
            .collect();
        self.tensors.push((name.into(), shape.to_vec(), 0, data));
        self
    }
    pub(crate) fn retype(mut self, name: &str, ggml_type: u32) -> Self {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap().2 = ggml_type;
        self
    }
    pub(crate) fn bytes(&self) -> Vec<u8> {
        fn s(out: &mut Vec<u8>, v: &str) {
            out.extend((v.len() as u64).to_le_bytes());
            out.extend(v.as_bytes());
        }
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend((self.tensors.len() as u64).to_le_bytes());
        b.extend((self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            s(&mut b, k);
            let arr = |b: &mut Vec<u8>, t: u32, n: usize| {
                b.extend(9u32.to_le_bytes());
                b.extend(t.to_le_bytes());
                b.extend((n as u64).to_le_bytes());
            };
            match v {
                Kv::U32(x) => b.extend(4u32.to_le_bytes().into_iter().chain(x.to_le_bytes())),
                Kv::F32(x) => b.extend(6u32.to_le_bytes().into_iter().chain(x.to_le_bytes())),
                Kv::Bool(x) => b.extend(7u32.to_le_bytes().into_iter().chain([*x as u8])),
                Kv::Str(x) => {
                    b.extend(8u32.to_le_bytes());
                    s(&mut b, x);
                }
                Kv::Strs(xs) => {
                    arr(&mut b, 8, xs.len());
                    xs.iter().for_each(|x| s(&mut b, x));
                }
                Kv::I32s(xs) => {
                    arr(&mut b, 5, xs.len());
                    xs.iter().for_each(|x| b.extend(x.to_le_bytes()));
                }
                Kv::F32s(xs) => {
                    arr(&mut b, 6, xs.len());
                    xs.iter().for_each(|x| b.extend(x.to_le_bytes()));
                }
            }
        }
        let mut offset = 0u64;
        for (name, shape, ty, data) in &self.tensors {
            s(&mut b, name);
            b.extend((shape.len() as u32).to_le_bytes());
            shape
                .iter()
                .rev()
                .for_each(|d| b.extend((*d as u64).to_le_bytes()));
            b.extend(ty.to_le_bytes());
            b.extend(offset.to_le_bytes());
            offset += (data.len() as u64).div_ceil(32) * 32;
        }
        for (_, _, _, data) in &self.tensors {
            b.resize(b.len().div_ceil(32) * 32, 0);
            b.extend(data);
        }
        b
    }
    pub(crate) fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.bytes()).unwrap();
        p
    }
}

pub(crate) fn strs(v: &[&str]) -> Kv {
    Kv::Strs(v.iter().map(|s| s.to_string()).collect())
}

/// A complete tiny model: hidden 8, 2 heads of 4, 1 KV head, FFN 16, 1 layer, 5-token byte-level vocab.
pub(crate) fn tiny(arch: &str) -> Builder {
    let k = |s: &str| format!("{arch}.{s}");
    let mut b = Builder::default()
        .kv("general.architecture", Kv::Str(arch.into()))
        .kv(&k("block_count"), Kv::U32(1))
        .kv(&k("context_length"), Kv::U32(64))
        .kv(&k("embedding_length"), Kv::U32(8))
        .kv(&k("feed_forward_length"), Kv::U32(16))
        .kv(&k("attention.head_count"), Kv::U32(2))
        .kv(&k("attention.head_count_kv"), Kv::U32(1))
        .kv(&k("attention.layer_norm_rms_epsilon"), Kv::F32(1e-6))
        .kv(&k("rope.freq_base"), Kv::F32(500000.0))
        .kv("tokenizer.ggml.model", Kv::Str("gpt2".into()))
        .kv(
            "tokenizer.ggml.tokens",
            strs(&["<|endoftext|>", "a", "b", "ab", "Ġ"]),
        )
        .kv("tokenizer.ggml.token_type", Kv::I32s(vec![3, 1, 1, 1, 1]))
        .kv("tokenizer.ggml.merges", strs(&["a b"]))
        .kv("tokenizer.ggml.eos_token_id", Kv::U32(0))
        .kv("tokenizer.ggml.add_bos_token", Kv::Bool(false))
        .f32_tensor("token_embd.weight", &[5, 8])
        .f32_tensor("output_norm.weight", &[8]);
    for (n, s) in [
        ("attn_norm.weight", vec![8]),
        ("ffn_norm.weight", vec![8]),
        ("attn_q.weight", vec![8, 8]),
        ("attn_k.weight", vec![4, 8]),
        ("attn_v.weight", vec![4, 8]),
        ("attn_output.weight", vec![8, 8]),
        ("ffn_gate.weight", vec![16, 8]),
        ("ffn_up.weight", vec![16, 8]),
        ("ffn_down.weight", vec![8, 16]),
    ] {
        b = b.f32_tensor(&format!("blk.0.{n}"), &s);
    }
    b
}

pub(crate) fn load_st(dir: &Path) -> (Vec<u8>, Value) {
    (
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        read_json(&dir.join("config.json")),
    )
}
