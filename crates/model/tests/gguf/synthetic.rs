//! GGUF import tests: synthetic files (Qwen2, SentencePiece, RoPE scaling).

use super::writer::*;
use super::*;

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
        .kv("tokenizer.ggml.tokens", Kv::Strs(tokens.clone()))
        .kv("tokenizer.ggml.token_type", Kv::I32s(types.clone()))
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

    // Exported again (HF tokenizer.json → `llama` GGUF vocabulary): the same tokens and types, and a GGUF
    // written from the imported folder imports back to a tokenizer giving the same ids.
    use ferrotune_model::gguf::export::{write_model_gguf, GgufType};
    use ferrotune_model::gguf::{vocab::vocab_metadata, Value};
    let vocab = vocab_metadata(&out, 300, (Some(1), Some(2))).unwrap();
    assert_eq!(vocab.model, "llama");
    let get = |k: &str| {
        vocab
            .entries
            .iter()
            .find(|(key, _)| key == &format!("tokenizer.ggml.{k}"))
            .map(|(_, v)| v.clone())
    };
    let strs = |v: Option<Value>| match v {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => s,
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(strs(get("tokens")), tokens);
    let got_types: Vec<i32> = match get("token_type") {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::I32(t) => t,
                _ => -1,
            })
            .collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(got_types, types);
    assert_eq!(get("add_bos_token"), Some(Value::Bool(true)));
    assert_eq!(get("unknown_token_id"), Some(Value::U32(0)));
    assert_eq!(get("add_space_prefix"), Some(Value::Bool(true)));
    let weights = ferrotune_model::merge::MergedWeights::open(&out, None).unwrap();
    let again = tmp.path().join("again.gguf");
    write_model_gguf(
        &weights,
        vocab,
        None,
        "sp",
        GgufType::F32,
        &again,
        &mut |_, _| {},
    )
    .unwrap();
    let back = tmp.path().join("back");
    import_gguf(&again, &back).unwrap();
    let tok2 = tokenizers::Tokenizer::from_file(back.join("tokenizer.json")).unwrap();
    for (text, want, _) in cases {
        assert_eq!(
            tok2.encode(text, true).unwrap().get_ids(),
            want,
            "ids of {text:?} after export"
        );
    }
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
