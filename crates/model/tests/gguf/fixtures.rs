//! GGUF import tests: the committed fixtures (quant types, tiny Llama).

use super::*;

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
