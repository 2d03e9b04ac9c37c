//! Export end to end on the tiny fixtures, without training: a run folder holding a fixture's PEFT adapter is
//! exported, and the merged folder's logits (loaded back by Ferrotune) equal PEFT's `merge_and_unload`
//! (`crates/train/tests/fixtures/export_merge/`, written by `tools/fixtures/export_reference.py`); the GGUF
//! reads back with the same weights; the chat template reproduces the training tokens; bad runs are refused.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use ferrotune_export::{export, ExportDtype, ExportFormat, ExportOptions, GgufType, RunSource};
use ferrotune_home::{Home, RunDir, RunStatus};
use ferrotune_model::Backbone;
use ferrotune_test_support::{copy_dir, max_diff, model_fixture, read_json};

fn train_fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../train/tests/fixtures")
        .join(path)
}

/// (case, base backbone, adapter folder) of the merge fixtures.
const CASES: &[(&str, &str, &str)] = &[
    ("llama_lora", "llama3_rope", "lora_step/adapter"),
    ("llama_rslora", "llama3_rope", "lora_step/rslora/adapter"),
    ("llama_dora", "llama3_rope", "lora_step/dora/adapter"),
    ("qwen2_lora", "qwen2_tied", "lora_step_qwen2/adapter"),
    (
        "qwen2_rslora",
        "qwen2_tied",
        "lora_step_qwen2/rslora/adapter",
    ),
    ("qwen2_dora", "qwen2_tied", "lora_step_qwen2/dora/adapter"),
    (
        "mistral_lora",
        "mistral_sharded",
        "export_merge/mistral_adapter",
    ),
];

/// A finished run folder on `base` with `adapter` as its trained adapter, and extra YAML lines.
fn fake_run(root: &Path, base: &str, adapter: &Path, extra: &str) -> RunDir {
    let run = RunDir::new(root.join("run"));
    std::fs::create_dir_all(run.root()).unwrap();
    std::fs::write(
        run.config(),
        format!(
            "experiment_name: tiny-{base}\nllm_backbone: {}\n{extra}",
            model_fixture(base).display()
        ),
    )
    .unwrap();
    copy_dir(adapter, &run.adapter());
    run.write_status(RunStatus::Finished, "").unwrap();
    run
}

/// [`fake_run`] resolved for export (with a home of its own under `root`).
fn resolved(root: &Path, base: &str, adapter: &str, extra: &str) -> RunSource {
    let home = Home::new(root.join("home"));
    let run = fake_run(root, base, &train_fixture(adapter), extra);
    RunSource::resolve(&run, &home).unwrap()
}

fn logits(dir: &Path, ids: &Tensor) -> Tensor {
    let b = Backbone::load_folder(dir, DType::F32, &Device::Cpu).unwrap();
    b.model.forward(ids, None).unwrap()
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

fn reference(case: &str) -> (Tensor, Tensor) {
    let path = train_fixture("export_merge").join(format!("{case}.safetensors"));
    let t = candle_core::safetensors::load(&path, &Device::Cpu).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run tools/fixtures/export_reference.py)",
            path.display()
        )
    });
    (
        t["input_ids"].to_dtype(DType::U32).unwrap(),
        t["logits"].clone(),
    )
}

#[test]
fn merged_folders_give_peft_merge_and_unload_logits() {
    for &(case, base, adapter) in CASES {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path().join("home"));
        let run = fake_run(tmp.path(), base, &train_fixture(adapter), "");
        let source = RunSource::resolve(&run, &home).unwrap();
        let out = tmp.path().join("merged");
        let mut opts = ExportOptions::new(out.clone(), ExportFormat::Hf);
        opts.dtype = Some(ExportDtype::Float32);
        let mut calls = 0;
        let summary = export(&source, &opts, &mut |_| calls += 1).unwrap();
        assert!(
            summary.merged_modules >= 14,
            "{case}: {}",
            summary.merged_modules
        );
        assert!(calls > 0);
        let (ids, want) = reference(case);
        let got = logits(&out, &ids);
        let d = max_diff(&got, &want);
        assert!(
            d <= 1e-4,
            "{case}: merged logits differ from PEFT's merge_and_unload by {d}"
        );
        // …and from Ferrotune's own backbone + adapter.
        let mut b = Backbone::load_folder(&model_fixture(base), DType::F32, &Device::Cpu).unwrap();
        ferrotune_model::adapter::load_peft(&mut b.model, &train_fixture(adapter)).unwrap();
        let d = max_diff(&got, &b.model.forward(&ids, None).unwrap());
        assert!(
            d <= 1e-4,
            "{case}: merged logits differ from backbone + adapter by {d}"
        );

        let config = read_json(&out.join("config.json"));
        assert_eq!(config["torch_dtype"], "float32", "{case}");
        for f in [
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "generation_config.json",
            "README.md",
            "cfg.yaml",
        ] {
            assert!(out.join(f).is_file(), "{case}: {f} missing");
        }
        let names = |dir: &Path| {
            let mut n: Vec<String> = ferrotune_model::weights::Weights::open(dir)
                .unwrap()
                .names()
                .map(String::from)
                .collect();
            n.sort();
            n
        };
        assert_eq!(
            names(&out),
            names(&model_fixture(base)),
            "{case}: tensor names"
        );
        assert!(!tmp.path().read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".merged")));
    }
}

#[test]
fn sixteen_bit_exports_and_shards_keep_the_logits_close() {
    let tmp = tempfile::tempdir().unwrap();
    let source = resolved(tmp.path(), "llama3_rope", "lora_step/adapter", "");
    let (ids, want) = reference("llama_lora");
    for (dtype, shard, bound) in [
        (ExportDtype::Bfloat16, 100_000, 0.1),
        (ExportDtype::Float16, 5_000_000_000, 0.02),
    ] {
        let out = tmp.path().join(dtype.name());
        let mut opts = ExportOptions::new(out.clone(), ExportFormat::Hf);
        opts.dtype = Some(dtype);
        opts.max_shard_bytes = shard;
        export(&source, &opts, &mut |_| {}).unwrap();
        assert_eq!(
            read_json(&out.join("config.json"))["torch_dtype"],
            dtype.name()
        );
        let sharded = out.join("model.safetensors.index.json").is_file();
        assert_eq!(sharded, shard < 1_000_000, "{}", dtype.name());
        let d = max_diff(&logits(&out, &ids), &want) / max_abs(&want);
        assert!(d <= bound, "{}: {d} of the largest logit", dtype.name());
    }
}

#[test]
fn the_marker_template_renders_the_tokens_training_used() {
    let tmp = tempfile::tempdir().unwrap();
    let source = resolved(tmp.path(), "llama3_rope", "lora_step/adapter", "");
    let out = tmp.path().join("merged");
    export(
        &source,
        &ExportOptions::new(out.clone(), ExportFormat::Hf),
        &mut |_| {},
    )
    .unwrap();
    let exported = ferrotune_data::TextTokenizer::from_dir(&out).unwrap();
    let messages = [
        ferrotune_data::Message::new("system", "Be brief."),
        ferrotune_data::Message::new("user", "Add 3 and 6."),
        ferrotune_data::Message::new("assistant", "9"),
        ferrotune_data::Message::new("user", "And 4 and 4?"),
    ];
    let ids = exported.encode_chat(&messages).unwrap();
    // What the data crate builds for the same conversation with the default markers: BOS, system marker +
    // system + EOS, per turn prompt marker + prompt + EOS + answer marker, answer + EOS.
    let tok = ferrotune_data::TextTokenizer::from_dir(&model_fixture("llama3_rope")).unwrap();
    let eos = tok.token_id(tok.eos_token().unwrap()).unwrap();
    let enc = |t: &str| tok.encode(t, false).unwrap();
    let mut want = tok.encode("", true).unwrap();
    want.extend(enc("<|system|>Be brief."));
    want.push(eos);
    for (p, a) in [("Add 3 and 6.", Some("9")), ("And 4 and 4?", None)] {
        want.extend(enc(&format!("<|prompt|>{p}")));
        want.push(eos);
        want.extend(enc("<|answer|>"));
        if let Some(a) = a {
            want.extend(enc(a));
            want.push(eos);
        }
    }
    assert_eq!(ids, want);
}

#[test]
fn gguf_exports_read_back_with_the_merged_weights_and_a_modelfile() {
    let tmp = tempfile::tempdir().unwrap();
    let source = resolved(tmp.path(), "qwen2_tied", "lora_step_qwen2/adapter", "dataset:\n  use_chat_template: true\nprediction:\n  do_sample: true\n  temperature: 0.7\n  top_k: 40\n");
    let hf = tmp.path().join("hf");
    let mut opts = ExportOptions::new(hf.clone(), ExportFormat::Hf);
    opts.dtype = Some(ExportDtype::Float32);
    export(&source, &opts, &mut |_| {}).unwrap();
    for ty in [GgufType::F32, GgufType::Q8_0] {
        let out = tmp.path().join(ty.name());
        let mut opts = ExportOptions::new(out.clone(), ExportFormat::Gguf);
        opts.gguf_type = ty;
        let summary = export(&source, &opts, &mut |_| {}).unwrap();
        let file = out.join(format!("tiny-qwen2_tied.{}.gguf", ty.name()));
        assert!(file.is_file(), "{:?}", summary.files);
        let modelfile = std::fs::read_to_string(out.join("Modelfile")).unwrap();
        assert!(
            modelfile.contains(&format!("FROM ./tiny-qwen2_tied.{}.gguf", ty.name())),
            "{modelfile}"
        );
        assert!(modelfile.contains("<|im_start|>{{ .Role }}"), "{modelfile}");
        assert!(
            modelfile.contains("PARAMETER stop \"<|im_end|>\""),
            "{modelfile}"
        );
        assert!(
            modelfile.contains("PARAMETER temperature 0.7")
                && modelfile.contains("PARAMETER top_k 40"),
            "{modelfile}"
        );
        let back = tmp.path().join(format!("back-{}", ty.name()));
        ferrotune_model::gguf::import_gguf(&file, &back).unwrap();
        let (ids, want) = reference("qwen2_lora");
        // Relative to the largest logit: f32 exact; q8_0 (weights within 1/254 of their block max, checked in the
        // model crate) within 10 % through this tiny random model, whose logits are dominated by few weights.
        let scale = max_abs(&want);
        let d = max_diff(&logits(&back, &ids), &logits(&hf, &ids)) / scale;
        let bound = if ty == GgufType::F32 { 1e-6 } else { 0.1 };
        assert!(d <= bound, "{}: {d}", ty.name());
        let d = max_diff(&logits(&back, &ids), &want) / scale;
        assert!(d <= bound.max(1e-5), "{}: {d}", ty.name());
    }
}

#[test]
fn the_adapter_gguf_has_llama_cpp_names_and_alpha() {
    let tmp = tempfile::tempdir().unwrap();
    let source = resolved(tmp.path(), "llama3_rope", "lora_step/rslora/adapter", "");
    let out = tmp.path().join("lora");
    export(
        &source,
        &ExportOptions::new(out.clone(), ExportFormat::GgufAdapter),
        &mut |_| {},
    )
    .unwrap();
    let file =
        ferrotune_model::gguf::GgufFile::open(&out.join("tiny-llama3_rope.lora.gguf")).unwrap();
    assert_eq!(file.str("general.type").unwrap(), "adapter");
    assert_eq!(file.str("adapter.type").unwrap(), "lora");
    let peft = read_json(&train_fixture(
        "lora_step/rslora/adapter/adapter_config.json",
    ));
    let (r, alpha) = (
        peft["r"].as_f64().unwrap(),
        peft["lora_alpha"].as_f64().unwrap(),
    );
    assert!(peft["use_rslora"] == true);
    // llama.cpp scales by alpha / r: rsLoRA's alpha / √r is written as alpha·√r.
    assert!((file.f64("adapter.lora.alpha").unwrap() - alpha * r.sqrt()).abs() < 1e-4);
    assert!(file.tensor_info("blk.0.attn_q.weight.lora_a").is_some());
    assert!(file.tensor_info("blk.1.ffn_down.weight.lora_b").is_some());
    // DoRA has no adapter form.
    let tmp2 = tempfile::tempdir().unwrap();
    let source = resolved(tmp2.path(), "llama3_rope", "lora_step/dora/adapter", "");
    let err = export(
        &source,
        &ExportOptions::new(tmp2.path().join("x"), ExportFormat::GgufAdapter),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("DoRA") && err.contains("help:"), "{err}");
    assert!(!tmp2.path().join("x").exists());
}

#[test]
fn bad_runs_are_refused_with_one_paragraph_and_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::new(tmp.path().join("home"));
    let err = |run: &RunDir| {
        RunSource::resolve(run, &home)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    // Not a run.
    let e = err(&RunDir::new(tmp.path().join("nothing")));
    assert!(e.contains("no `cfg.yaml`"), "{e}");
    // Still running (this process is alive).
    let run = fake_run(
        tmp.path(),
        "llama3_rope",
        &train_fixture("lora_step/adapter"),
        "",
    );
    run.write_status(RunStatus::Running, "").unwrap();
    let e = err(&run);
    assert!(e.contains("still running"), "{e}");
    // No adapter yet.
    run.write_status(RunStatus::Failed, "boom").unwrap();
    std::fs::remove_dir_all(run.adapter()).unwrap();
    let e = err(&run);
    assert!(e.contains("not saved trained weights"), "{e}");
    // The backbone is gone.
    let tmp2 = tempfile::tempdir().unwrap();
    let gone = tmp2.path().join("gone");
    copy_dir(&model_fixture("llama3_rope"), &gone);
    let run2 = RunDir::new(tmp2.path().join("run"));
    std::fs::create_dir_all(run2.root()).unwrap();
    std::fs::write(run2.config(), format!("llm_backbone: {}\n", gone.display())).unwrap();
    copy_dir(&train_fixture("lora_step/adapter"), &run2.adapter());
    std::fs::remove_dir_all(&gone).unwrap();
    let e = err(&run2);
    assert!(e.contains("is gone") && e.contains("help:"), "{e}");
    // An output folder that is not empty.
    let run3 = fake_run(
        tmp2.path().join("r3").as_path(),
        "llama3_rope",
        &train_fixture("lora_step/adapter"),
        "",
    );
    let source = RunSource::resolve(&run3, &home).unwrap();
    // A killed export's staging folder (its pid above Linux's largest, so gone) is cleared by the next export to the same place.
    let stale = tmp2.path().join(".merged.tmp-4194305-1-0");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), "half").unwrap();
    export(
        &source,
        &ExportOptions::new(tmp2.path().join("merged"), ExportFormat::Hf),
        &mut |_| {},
    )
    .unwrap();
    assert!(!stale.exists());
    let out = tmp2.path().join("full");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let e = export(
        &source,
        &ExportOptions::new(out.clone(), ExportFormat::Hf),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not empty"), "{e}");
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
    // An unknown chat template fails before anything is written; --no-modelfile skips it.
    let weird = tmp2.path().join("weird");
    copy_dir(&model_fixture("llama3_rope"), &weird);
    let tc = weird.join("tokenizer_config.json");
    let mut cfg = read_json(&tc);
    cfg["chat_template"] =
        serde_json::json!("{% for m in messages %}### {{ m['content'] }}{% endfor %}");
    std::fs::write(&tc, cfg.to_string()).unwrap();
    let run4 = RunDir::new(tmp2.path().join("run4"));
    std::fs::create_dir_all(run4.root()).unwrap();
    std::fs::write(
        run4.config(),
        format!(
            "llm_backbone: {}\ndataset:\n  use_chat_template: true\n",
            weird.display()
        ),
    )
    .unwrap();
    copy_dir(&train_fixture("lora_step/adapter"), &run4.adapter());
    let source = RunSource::resolve(&run4, &home).unwrap();
    let out = tmp2.path().join("g");
    let e = export(
        &source,
        &ExportOptions::new(out.clone(), ExportFormat::Gguf),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("### {{ m['content'] }}") && e.contains("--no-modelfile"),
        "{e}"
    );
    assert!(!out.exists());
    let mut opts = ExportOptions::new(out.clone(), ExportFormat::Gguf);
    opts.modelfile = false;
    export(&source, &opts, &mut |_| {}).unwrap();
    assert!(!out.join("Modelfile").exists() && out.read_dir().unwrap().count() == 2);
}
