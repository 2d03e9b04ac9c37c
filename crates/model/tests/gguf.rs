//! GGUF import: dequantization against gguf-py, the tiny Llama fixture against transformers' GGUF
//! loader (tokenizer ids, HF tensor layout, Q/K permutation), synthetic files for Qwen2, the
//! SentencePiece tokenizer and RoPE scaling, and every error path (never a panic, nothing left behind).
//!
//! Fixtures: `tests/fixtures/gguf_quants` and `tests/fixtures/gguf_llama`, written by
//! `tools/fixtures/tiny_gguf.py` (see their SOURCE.md). They are committed; a missing one fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ferrotune_model::gguf::{import_gguf, GgufError, GgufFile};
use safetensors::SafeTensors;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
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

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
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

#[test]
fn dequantizes_every_fixture_quant_type_like_gguf_py() {
    let dir = fixtures().join("gguf_quants");
    let file = GgufFile::open(&dir.join("quants.gguf")).unwrap();
    let expected_bytes = std::fs::read(dir.join("expected.safetensors")).unwrap();
    let expected = SafeTensors::deserialize(&expected_bytes).unwrap();
    let cases = [
        ("t_f32", "F32"),
        ("t_f16", "F16"),
        ("t_q4_0", "Q4_0"),
        ("t_q4_1", "Q4_1"),
        ("t_q8_0", "Q8_0"),
        ("t_q4_k", "Q4_K"),
        ("t_q6_k", "Q6_K"),
    ];
    for (name, ggml) in cases {
        assert_eq!(file.tensor_info(name).unwrap().type_name(), ggml, "{name}");
        let (shape, got) = file.read_tensor_f32(name).unwrap();
        let (want_shape, want) = f32s(&expected, name);
        assert_eq!(shape, vec![4, 256], "{name}");
        assert_eq!(shape, want_shape, "{name}");
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = max_abs_diff(&got, &want);
        assert!(
            diff <= 1e-6 * scale.max(1.0),
            "{name} ({ggml}): max |diff| {diff} (scale {scale})"
        );
    }
}

#[test]
fn imports_tiny_llama_fixture_into_an_hf_folder() {
    let fx = fixtures().join("gguf_llama");
    let gguf = fx.join("model.gguf");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nested/imported");
    let summary = import_gguf(&gguf, &out).unwrap();
    assert_eq!(summary.architecture, "llama");
    assert_eq!(summary.hf_architecture, "LlamaForCausalLM");
    assert_eq!(
        (summary.vocab_size, summary.n_layers, summary.hidden_size),
        (320, 2, 64)
    );
    assert_eq!(summary.tensors, 21);
    assert!(!summary.tie_word_embeddings);
    assert_eq!(summary.out_dir, out);
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
    // Nothing but the output next to it (the temp dir was renamed, not copied).
    assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 1);

    // config.json agrees with what transformers builds from the file.
    let cfg = read_json(&out.join("config.json"));
    let want = &read_json(&fx.join("expected_text.json"))["transformers_config"];
    assert_eq!(
        cfg["architectures"],
        serde_json::json!(["LlamaForCausalLM"])
    );
    for key in [
        "model_type",
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "max_position_embeddings",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "tie_word_embeddings",
        "head_dim",
    ] {
        assert_eq!(cfg[key], want[key], "config.json `{key}`");
    }
    assert!((cfg["rms_norm_eps"].as_f64().unwrap() - 1e-5).abs() < 1e-12);
    assert_eq!(cfg["rope_theta"].as_f64(), Some(10000.0));
    assert_eq!(cfg["hidden_act"], "silu");
    assert_eq!(cfg["torch_dtype"], "float32");
    assert!(cfg.get("rope_scaling").is_none());
    let gen = read_json(&out.join("generation_config.json"));
    assert_eq!(
        (
            gen["bos_token_id"].as_u64(),
            gen["eos_token_id"].as_u64(),
            gen["pad_token_id"].as_u64()
        ),
        (Some(0), Some(2), Some(0))
    );

    // Tensors: exactly the HF names, float32, each equal to the dequantized GGUF tensor, with
    // llama.cpp's Q/K permutation undone (checked by re-applying it).
    let file = GgufFile::open(&gguf).unwrap();
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut expected_names = BTreeSet::from(
        [
            "model.embed_tokens.weight",
            "model.norm.weight",
            "lm_head.weight",
        ]
        .map(String::from),
    );
    let pairs = [
        ("attn_norm.weight", "input_layernorm.weight", None),
        ("attn_q.weight", "self_attn.q_proj.weight", Some(4)),
        ("attn_k.weight", "self_attn.k_proj.weight", Some(2)),
        ("attn_v.weight", "self_attn.v_proj.weight", None),
        ("attn_output.weight", "self_attn.o_proj.weight", None),
        ("ffn_norm.weight", "post_attention_layernorm.weight", None),
        ("ffn_gate.weight", "mlp.gate_proj.weight", None),
        ("ffn_up.weight", "mlp.up_proj.weight", None),
        ("ffn_down.weight", "mlp.down_proj.weight", None),
    ];
    let mut checks = vec![
        (
            "token_embd.weight".to_string(),
            "model.embed_tokens.weight".to_string(),
            None,
            vec![320, 64],
        ),
        (
            "output_norm.weight".into(),
            "model.norm.weight".into(),
            None,
            vec![64],
        ),
        (
            "output.weight".into(),
            "lm_head.weight".into(),
            None,
            vec![320, 64],
        ),
    ];
    for l in 0..2 {
        for (g, h, n_head) in pairs {
            let shape = match g {
                "attn_norm.weight" | "ffn_norm.weight" => vec![64],
                "attn_q.weight" | "attn_output.weight" => vec![64, 64],
                "attn_k.weight" | "attn_v.weight" => vec![32, 64],
                "ffn_down.weight" => vec![64, 128],
                _ => vec![128, 64],
            };
            expected_names.insert(format!("model.layers.{l}.{h}"));
            checks.push((
                format!("blk.{l}.{g}"),
                format!("model.layers.{l}.{h}"),
                n_head,
                shape,
            ));
        }
    }
    let got_names: BTreeSet<String> = st.names().into_iter().map(String::from).collect();
    assert_eq!(got_names, expected_names);
    for (g, h, n_head, shape) in checks {
        let (got_shape, got) = f32s(&st, &h);
        assert_eq!(got_shape, shape, "{h}");
        let (_, raw) = file.read_tensor_f32(&g).unwrap();
        match n_head {
            None => assert_eq!(got, raw, "{h} differs from {g}"),
            Some(n) => {
                assert_ne!(got, raw, "{h}: the permutation was not undone");
                assert_eq!(
                    llama_cpp_permute(&got, shape[0], n),
                    raw,
                    "{h}: permuting it back does not give {g}"
                );
            }
        }
    }

    // The tokenizer gives transformers' ids (BOS prepended) and decodes back.
    let text = read_json(&fx.join("expected_text.json"));
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let texts = text["texts"].as_array().unwrap();
    assert_eq!(texts.len(), 5);
    for (i, t) in texts.iter().enumerate() {
        let t = t.as_str().unwrap();
        let ids = tok.encode(t, true).unwrap().get_ids().to_vec();
        let want: Vec<u32> = serde_json::from_value(text["ids"][i].clone()).unwrap();
        assert_eq!(ids, want, "ids of {t:?}");
        assert_eq!(
            tok.decode(&ids, true).unwrap(),
            text["decoded"][i].as_str().unwrap(),
            "decode of {t:?}"
        );
    }
    let tc = read_json(&out.join("tokenizer_config.json"));
    let sp = &text["special_tokens"];
    for k in ["bos_token", "eos_token", "pad_token"] {
        assert_eq!(tc[k], sp[k], "tokenizer_config `{k}`");
    }
    assert_eq!(tc["unk_token"], Value::Null);
    assert_eq!(tc["chat_template"], text["chat_template"]);
    assert_eq!(
        (tc["add_bos_token"].as_bool(), tc["add_eos_token"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(tc["tokenizer_class"], "PreTrainedTokenizerFast");
    assert_eq!(tc["model_max_length"], 256);
}

// ---------------------------------------------------------------------------------------------
// Synthetic files
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
enum Kv {
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
struct Builder {
    kvs: Vec<(String, Kv)>,
    /// name, row-major shape, ggml type id, data
    tensors: Vec<(String, Vec<usize>, u32, Vec<u8>)>,
}

impl Builder {
    fn kv(mut self, key: &str, v: Kv) -> Self {
        self.kvs.retain(|(k, _)| k != key);
        self.kvs.push((key.into(), v));
        self
    }
    fn without(mut self, key: &str) -> Self {
        self.kvs.retain(|(k, _)| k != key);
        self.tensors.retain(|(n, ..)| n != key);
        self
    }
    fn f32_tensor(mut self, name: &str, shape: &[usize]) -> Self {
        let n: usize = shape.iter().product();
        let seed = name.bytes().map(u32::from).sum::<u32>() as f32;
        let data = (0..n)
            .flat_map(|i| ((i as f32 * 0.37 + seed).sin() * 0.5).to_le_bytes())
            .collect();
        self.tensors.push((name.into(), shape.to_vec(), 0, data));
        self
    }
    fn retype(mut self, name: &str, ggml_type: u32) -> Self {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap().2 = ggml_type;
        self
    }
    fn bytes(&self) -> Vec<u8> {
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
    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.bytes()).unwrap();
        p
    }
}

fn strs(v: &[&str]) -> Kv {
    Kv::Strs(v.iter().map(|s| s.to_string()).collect())
}

/// A complete tiny model: hidden 8, 2 heads of 4, 1 KV head, FFN 16, 1 layer, 5-token byte-level vocab.
fn tiny(arch: &str) -> Builder {
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

fn load_st(dir: &Path) -> (Vec<u8>, Value) {
    (
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        read_json(&dir.join("config.json")),
    )
}

#[test]
fn qwen2_import_keeps_row_order_and_biases_and_ties_embeddings() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tiny("qwen2")
        .f32_tensor("blk.0.attn_q.bias", &[8])
        .f32_tensor("blk.0.attn_k.bias", &[4])
        .f32_tensor("blk.0.attn_v.bias", &[4]);
    let path = b.write(tmp.path(), "q.gguf");
    let out = tmp.path().join("out");
    let s = import_gguf(&path, &out).unwrap();
    assert_eq!(
        (
            s.architecture.as_str(),
            s.hf_architecture.as_str(),
            s.tie_word_embeddings
        ),
        ("qwen2", "Qwen2ForCausalLM", true)
    );
    let (bytes, cfg) = load_st(&out);
    assert_eq!(cfg["model_type"], "qwen2");
    assert_eq!(cfg["architectures"][0], "Qwen2ForCausalLM");
    assert_eq!(cfg["tie_word_embeddings"], true);
    assert_eq!(cfg["rope_theta"].as_f64(), Some(500000.0));
    assert_eq!(cfg["rms_norm_eps"].as_f64(), Some(1e-6));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert!(st.tensor("lm_head.weight").is_err(), "tied: no lm_head");
    let file = GgufFile::open(&path).unwrap();
    for (g, h) in [
        (
            "blk.0.attn_q.weight",
            "model.layers.0.self_attn.q_proj.weight",
        ),
        (
            "blk.0.attn_k.weight",
            "model.layers.0.self_attn.k_proj.weight",
        ),
        ("blk.0.attn_q.bias", "model.layers.0.self_attn.q_proj.bias"),
        ("blk.0.attn_k.bias", "model.layers.0.self_attn.k_proj.bias"),
        ("blk.0.attn_v.bias", "model.layers.0.self_attn.v_proj.bias"),
    ] {
        assert_eq!(
            f32s(&st, h).1,
            file.read_tensor_f32(g).unwrap().1,
            "qwen2 {h} must be copied unpermuted"
        );
    }
    assert_eq!(st.names().len(), 14);
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    assert_eq!(
        tok.encode("ab a<|endoftext|>", true).unwrap().get_ids(),
        [3, 4, 1, 0],
        "no BOS, merges applied"
    );

    // A qwen2 file without its q/k/v biases is incomplete.
    let err = import_gguf(
        &tiny("qwen2").write(tmp.path(), "nobias.gguf"),
        &tmp.path().join("o2"),
    )
    .unwrap_err();
    assert!(
        matches!(&err, GgufError::MissingTensor { tensor, .. } if tensor == "blk.0.attn_q.bias"),
        "{err}"
    );
}

#[test]
fn sentencepiece_vocab_tokenizes_like_transformers() {
    // The vocabulary of a tiny llama-type (SentencePiece) GGUF; expected ids from transformers 5.24's
    // `AutoTokenizer.from_pretrained(dir, gguf_file=...)` on the same metadata (gguf-py 0.19 writer).
    let words = [
        "▁",
        "▁t",
        "h",
        "e",
        "▁th",
        "▁the",
        "l",
        "o",
        "▁h",
        "▁he",
        "ll",
        "▁hell",
        "▁hello",
        "w",
        "r",
        "d",
        "▁w",
        "▁wo",
        "or",
        "▁wor",
        "▁world",
        "a",
        "▁a",
        "n",
        "▁an",
        "▁and",
        "1",
        "2",
        "3",
        "▁▁",
        "▁▁▁",
        "i",
        "s",
        "▁i",
        "▁is",
        "t",
        "c",
        "▁c",
        "at",
        "▁cat",
        "<|user|>",
    ];
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    tokens.extend((0..256).map(|b| format!("<0x{b:02X}>")));
    let mut types = vec![2, 3, 3];
    types.extend([6; 256]);
    let mut scores = vec![0f32; tokens.len()];
    for (i, w) in words.iter().enumerate() {
        tokens.push(w.to_string());
        types.push(if *w == "<|user|>" { 4 } else { 1 });
        scores.push(-(i as f32));
    }
    let tmp = tempfile::tempdir().unwrap();
    let b = tiny("llama")
        .without("tokenizer.ggml.merges")
        .without("tokenizer.ggml.add_bos_token") // the SentencePiece default (true) applies
        .without("token_embd.weight")
        .f32_tensor("token_embd.weight", &[tokens.len(), 8])
        .kv("tokenizer.ggml.model", Kv::Str("llama".into()))
        .kv("tokenizer.ggml.tokens", Kv::Strs(tokens))
        .kv("tokenizer.ggml.token_type", Kv::I32s(types))
        .kv("tokenizer.ggml.scores", Kv::F32s(scores))
        .kv("tokenizer.ggml.bos_token_id", Kv::U32(1))
        .kv("tokenizer.ggml.eos_token_id", Kv::U32(2))
        .kv("tokenizer.ggml.unknown_token_id", Kv::U32(0));
    let out = tmp.path().join("out");
    let s = import_gguf(&b.write(tmp.path(), "sp.gguf"), &out).unwrap();
    assert_eq!((s.tokenizer_model.as_str(), s.vocab_size), ("llama", 300));
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let cases: [(&str, &[u32], &str); 5] = [
        (
            "Hello world! the cat and the hat",
            &[
                1, 259, 75, 262, 269, 266, 278, 265, 274, 36, 264, 298, 284, 264, 267, 297,
            ],
            "Hello world! the cat and the hat",
        ),
        (
            "  leading  spaces, 123",
            &[
                1, 288, 265, 262, 280, 274, 290, 282, 106, 288, 291, 115, 280, 295, 262, 291, 47,
                259, 285, 286, 287,
            ],
            " leading  spaces, 123",
        ),
        (
            "héllo 日",
            &[1, 267, 198, 172, 269, 266, 259, 233, 154, 168],
            "héllo 日",
        ),
        (
            "<|user|>hi<s>there</s>",
            &[1, 299, 261, 290, 1, 294, 261, 262, 273, 262, 2],
            "<|user|>hithere",
        ),
        (
            "the\nworld",
            &[1, 264, 13, 272, 277, 265, 274],
            "the\nworld",
        ),
    ];
    for (text, want, decoded) in cases {
        let ids = tok.encode(text, true).unwrap().get_ids().to_vec();
        assert_eq!(ids, want, "ids of {text:?}");
        assert_eq!(
            tok.decode(&ids, true).unwrap(),
            decoded,
            "decode of {text:?}"
        );
    }
    let tc = read_json(&out.join("tokenizer_config.json"));
    assert_eq!(
        (
            tc["bos_token"].as_str(),
            tc["eos_token"].as_str(),
            tc["unk_token"].as_str()
        ),
        (Some("<s>"), Some("</s>"), Some("<unk>"))
    );
    assert_eq!(
        tc["add_bos_token"], true,
        "SentencePiece vocabularies add BOS unless the file says otherwise"
    );
}

#[test]
fn rope_scaling_reaches_config_json() {
    let tmp = tempfile::tempdir().unwrap();
    let linear = tiny("llama")
        .kv("llama.rope.scaling.type", Kv::Str("linear".into()))
        .kv("llama.rope.scaling.factor", Kv::F32(4.0));
    import_gguf(
        &linear.write(tmp.path(), "lin.gguf"),
        &tmp.path().join("lin"),
    )
    .unwrap();
    let cfg = read_json(&tmp.path().join("lin/config.json"));
    assert_eq!(
        cfg["rope_scaling"],
        serde_json::json!({"rope_type": "linear", "factor": 4.0})
    );

    // Llama 3.1 GGUFs carry the scaling as per-frequency factors in `rope_freqs.weight`.
    let (theta, head_dim) = (500000f64, 4usize);
    let factor_of = |i: usize| -> f32 {
        let wavelen = 2.0 * std::f64::consts::PI * theta.powf((2 * i) as f64 / head_dim as f64);
        let (low_freq_wavelen, high_freq_wavelen) = (8192.0 / 1.0, 8192.0 / 4.0);
        if wavelen < high_freq_wavelen {
            1.0
        } else if wavelen > low_freq_wavelen {
            8.0
        } else {
            let smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
            (1.0 / ((1.0 - smooth) / 8.0 + smooth)) as f32
        }
    };
    let factors: Vec<f32> = (0..head_dim / 2).map(factor_of).collect();
    assert!(
        factors[1] > 1.0 && factors[1] < 8.0,
        "the test should exercise the smooth band: {factors:?}"
    );
    let mut b = tiny("llama");
    b.tensors.push((
        "rope_freqs.weight".into(),
        vec![2],
        0,
        factors.iter().flat_map(|f| f.to_le_bytes()).collect(),
    ));
    import_gguf(&b.write(tmp.path(), "l3.gguf"), &tmp.path().join("l3")).unwrap();
    let cfg = read_json(&tmp.path().join("l3/config.json"));
    assert_eq!(cfg["rope_scaling"]["rope_type"], "llama3");
    assert_eq!(cfg["rope_scaling"]["factor"].as_f64(), Some(8.0));
    assert_eq!(
        cfg["rope_scaling"]["original_max_position_embeddings"],
        8192
    );

    let bad = tiny("llama")
        .kv("llama.rope.scaling.type", Kv::Str("longrope".into()))
        .kv("llama.rope.scaling.factor", Kv::F32(2.0));
    let err = import_gguf(&bad.write(tmp.path(), "bad.gguf"), &tmp.path().join("bad")).unwrap_err();
    assert!(
        matches!(&err, GgufError::UnsupportedRopeScaling { kind, .. } if kind == "longrope"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Errors: clear messages, no panic, nothing written
// ---------------------------------------------------------------------------------------------

/// Import must fail, leave `dir` as it was (only the input files), and format per the house style.
fn import_err(input: &Path, dir: &Path) -> GgufError {
    let before: BTreeSet<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let err = import_gguf(input, &dir.join("out")).expect_err("import should fail");
    let after: BTreeSet<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "a failed import left files behind");
    let msg = err.to_string();
    let (first, help) = msg
        .split_once("\nhelp: ")
        .unwrap_or_else(|| panic!("no help line in {msg:?}"));
    assert!(
        first.starts_with(|c: char| !c.is_uppercase()),
        "first line not lowercase: {first:?}"
    );
    assert!(
        first.contains('`'),
        "first line names nothing in backticks: {first:?}"
    );
    assert!(!help.is_empty());
    err
}

#[test]
fn rejects_files_that_are_not_gguf() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("model.gguf");
    std::fs::write(&text, "{\"architectures\": [\"LlamaForCausalLM\"]}").unwrap();
    let err = import_err(&text, tmp.path());
    assert!(matches!(&err, GgufError::NotGguf { .. }), "{err}");
    assert!(err.to_string().contains("is not a GGUF file"), "{err}");
    assert!(
        err.to_string().contains(&text.display().to_string()),
        "{err}"
    );

    let empty = tmp.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        import_err(&empty, tmp.path()),
        GgufError::NotGguf { .. }
    ));

    let missing = tmp.path().join("nope.gguf");
    assert!(matches!(
        import_err(&missing, tmp.path()),
        GgufError::Read { .. }
    ));

    let mut v4 = tiny("llama").bytes();
    v4[4] = 4;
    let p = tmp.path().join("v4.gguf");
    std::fs::write(&p, v4).unwrap();
    assert!(matches!(
        import_err(&p, tmp.path()),
        GgufError::UnsupportedVersion { version: 4, .. }
    ));
}

#[test]
fn rejects_truncated_files() {
    let full = std::fs::read(fixtures().join("gguf_llama/model.gguf")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Cut inside the metadata, inside the tensor table, and inside the tensor data.
    for (i, len) in [6, 20, 2000, full.len() / 2, full.len() - 64]
        .into_iter()
        .enumerate()
    {
        let p = tmp.path().join(format!("cut{i}.gguf"));
        std::fs::write(&p, &full[..len]).unwrap();
        let err = import_err(&p, tmp.path());
        assert!(
            matches!(&err, GgufError::Truncated { .. }),
            "cut at {len}: {err}"
        );
        assert!(err.to_string().contains("is truncated"), "{err}");
    }
}

#[test]
fn rejects_a_missing_key_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    for key in [
        "llama.block_count",
        "llama.attention.layer_norm_rms_epsilon",
        "general.architecture",
        "tokenizer.ggml.merges",
    ] {
        let p = tiny("llama").without(key).write(tmp.path(), "m.gguf");
        let err = import_err(&p, tmp.path());
        assert!(
            matches!(&err, GgufError::MissingKey { key: k, .. } if k == key),
            "{key}: {err}"
        );
        assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
    }
    let p = tiny("llama")
        .kv("llama.block_count", Kv::Str("two".into()))
        .write(tmp.path(), "t.gguf");
    assert!(matches!(
        import_err(&p, tmp.path()),
        GgufError::WrongKeyType { .. }
    ));
    let p = tiny("llama")
        .without("blk.0.ffn_up.weight")
        .write(tmp.path(), "t.gguf");
    let err = import_err(&p, tmp.path());
    assert!(
        matches!(&err, GgufError::MissingTensor { tensor, .. } if tensor == "blk.0.ffn_up.weight"),
        "{err}"
    );
}

#[test]
fn rejects_unsupported_architectures_listing_the_supported() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tiny("gemma2").write(tmp.path(), "g.gguf");
    let err = import_err(&p, tmp.path());
    assert!(
        matches!(&err, GgufError::UnsupportedArchitecture { architecture, .. } if architecture == "gemma2"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("`gemma2`") && msg.contains("`llama`") && msg.contains("`qwen2`"),
        "{msg}"
    );
}

#[test]
fn rejects_unsupported_ggml_types_naming_tensor_and_type() {
    let tmp = tempfile::tempdir().unwrap();
    for (id, name) in [
        (16u32, "IQ2_XXS"),
        (28, "F64"),
        (9, "Q8_1"),
        (77, "type 77"),
    ] {
        let p = tiny("llama")
            .retype("blk.0.ffn_up.weight", id)
            .write(tmp.path(), "q.gguf");
        let err = import_err(&p, tmp.path());
        assert!(
            matches!(&err, GgufError::UnsupportedTensorType { tensor, ggml_type, .. } if tensor == "blk.0.ffn_up.weight" && ggml_type == name),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("`{name}`")) && msg.contains("`Q4_K`") && msg.contains("`Q8_0`"),
            "{msg}"
        );
    }
}

#[test]
fn rejects_other_problems_without_leaving_anything() {
    let tmp = tempfile::tempdir().unwrap();
    // Fails after the temp folder was made (tokenizer stage): still nothing left.
    let p = tiny("llama")
        .kv("tokenizer.ggml.model", Kv::Str("bert".into()))
        .write(tmp.path(), "b.gguf");
    let err = import_err(&p, tmp.path());
    assert!(
        matches!(&err, GgufError::UnsupportedTokenizer { model, .. } if model == "bert"),
        "{err}"
    );

    let p = tiny("llama")
        .f32_tensor("blk.0.ffn_gate_exps.weight", &[2, 8])
        .write(tmp.path(), "x.gguf");
    assert!(matches!(
        import_err(&p, tmp.path()),
        GgufError::UnexpectedTensor { .. }
    ));

    let p = tiny("llama")
        .without("blk.0.attn_k.weight")
        .f32_tensor("blk.0.attn_k.weight", &[8, 8])
        .write(tmp.path(), "s.gguf");
    assert!(matches!(
        import_err(&p, tmp.path()),
        GgufError::TensorShape { .. }
    ));

    let p = tiny("llama")
        .kv("tokenizer.ggml.eos_token_id", Kv::U32(99))
        .write(tmp.path(), "e.gguf");
    assert!(matches!(
        import_err(&p, tmp.path()),
        GgufError::BadTokenizer { .. }
    ));

    // An existing, non-empty output folder is refused (an empty one is used).
    let good = tiny("llama").write(tmp.path(), "good.gguf");
    std::fs::create_dir(tmp.path().join("out")).unwrap();
    import_gguf(&good, &tmp.path().join("out")).expect("an empty output folder is fine");
    let err = import_gguf(&good, &tmp.path().join("out")).unwrap_err();
    assert!(matches!(&err, GgufError::OutputExists { .. }), "{err}");
}

#[test]
fn errors_can_cross_threads_and_convert_to_boxed_errors() {
    fn check<T: std::error::Error + Send + Sync + 'static>() {}
    check::<GgufError>();
}
