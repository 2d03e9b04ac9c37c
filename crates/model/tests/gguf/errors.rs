//! GGUF import tests: every error path.

use super::writer::*;
use super::*;

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
