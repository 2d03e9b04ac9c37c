//! `ferrotune export` end to end on runs the binary trains on the tiny llama fixture: an int4-trained LoRA
//! exported as a float16 merged folder (the default after a quantized run) whose logits match the f32
//! backbone + adapter, its GGUF and adapter GGUF; a classifier exported with transformers' sequence
//! classification head; a full fine-tuning exported without an adapter; and the refusals.

use std::path::{Path, PathBuf};

use ferrotune_model::{Backbone, DType, Device, Tensor};
use serde_json::Value;

use super::{ferrotune, fixture, stderr};

fn train_run(dir: &Path, name: &str, data: &Path, extra: &[&str]) -> PathBuf {
    let cfg = format!(
        "llm_backbone: {}\noutput_directory: {}/{{experiment_name}}\nexperiment_name: {name}\n\
         dataset:\n  train_dataframe: {}\n  system_column: None\n  validation_size: 0.2\n\
         training:\n  learning_rate: 0.01\n  batch_size: 4\n  epochs: 1\n\
         environment:\n  seed: 7\nprediction:\n  max_length_inference: 4\n",
        fixture("llama3_rope").display(),
        dir.display(),
        data.display(),
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, cfg).unwrap();
    let o = ferrotune()
        .arg("train")
        .arg("--config")
        .arg(&path)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    dir.join(name)
}

fn export(run: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    ferrotune()
        .arg("export")
        .arg(run)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn data(dir: &Path) -> PathBuf {
    let rows: Vec<Value> = (0..20)
        .map(|i| {
            let (word, label) = [("pear", "sweet"), ("rock", "plain")][i % 2];
            serde_json::json!({"instruction": format!("Item {i} is a {word}"), "input": "",
                               "output": format!("{}", 3 * i), "label": label})
        })
        .collect();
    let path = dir.join("data.json");
    std::fs::write(&path, serde_json::to_string(&rows).unwrap()).unwrap();
    path
}

#[test]
fn an_int4_trained_adapter_exports_merged_gguf_and_as_an_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let run = train_run(
        dir.path(),
        "int4",
        &data(dir.path()),
        &["--architecture.backbone_dtype", "int4"],
    );
    let out = dir.path().join("merged");
    let o = export(&run, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("float16"), "{}", stderr(&o));
    assert_eq!(json(&out.join("config.json"))["torch_dtype"], "float16");
    // The merge is onto the float backbone: the f16 folder's logits equal the f32 backbone with the adapter.
    let ids = Tensor::new(&[[0u32, 17, 40, 99, 150, 7, 230, 12]], &Device::Cpu).unwrap();
    let merged = Backbone::load_folder(&out, DType::F32, &Device::Cpu).unwrap();
    let mut reference =
        Backbone::load_folder(&fixture("llama3_rope"), DType::F32, &Device::Cpu).unwrap();
    ferrotune_model::adapter::load_peft(&mut reference.model, &run.join("adapter")).unwrap();
    let (a, b) = (
        merged.model.forward(&ids, None).unwrap(),
        reference.model.forward(&ids, None).unwrap(),
    );
    let d = ferrotune_test_support::max_diff(&a, &b);
    assert!(d < 0.05, "f16 merged logits differ by {d}");
    for f in [
        "README.md",
        "cfg.yaml",
        "generation_config.json",
        "chat_template.jinja",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        card.starts_with("---\nbase_model: llama3_rope\nlibrary_name: transformers\n"),
        "{card}"
    );
    assert!(card.contains("Final evaluation: Perplexity"), "{card}");
    assert_eq!(
        json(&out.join("generation_config.json"))["max_new_tokens"],
        4
    );

    let gguf = dir.path().join("gguf");
    let o = export(&run, &gguf, &["--format", "gguf", "--gguf-type", "q4_k_m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(gguf.join("int4.q4_k_m.gguf").is_file());
    let modelfile = std::fs::read_to_string(gguf.join("Modelfile")).unwrap();
    assert!(
        modelfile
            .contains("{{ \"<|prompt|>\" }}{{ .Content }}{{ \"<|im_end|>\" }}{{ \"<|answer|>\" }}"),
        "{modelfile}"
    );
    assert!(
        modelfile.contains("PARAMETER stop \"<|prompt|>\""),
        "{modelfile}"
    );
    let lora = dir.path().join("lora");
    let o = export(&run, &lora, &["--format", "gguf-adapter"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(lora.join("int4.lora.gguf").is_file());
    // Refusals: an existing non-empty folder, --dtype for a GGUF, a bad size; nothing is touched.
    let o = export(&run, &out, &[]);
    assert!(
        !o.status.success() && stderr(&o).contains("not empty"),
        "{}",
        stderr(&o)
    );
    let o = export(
        &run,
        &dir.path().join("x"),
        &["--format", "gguf", "--dtype", "float16"],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("--gguf-type"),
        "{}",
        stderr(&o)
    );
    let o = export(&run, &dir.path().join("x"), &["--max-shard-size", "lots"]);
    assert!(
        !o.status.success() && stderr(&o).contains("5GB"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("x").exists());
}

#[test]
fn a_classifier_exports_as_a_sequence_classifier_and_full_fine_tuning_without_an_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let run = train_run(
        dir.path(),
        "cls",
        &data,
        &["--problem_type", "text_causal_classification_modeling"],
    );
    let out = dir.path().join("cls-hf");
    let o = export(&run, &out, &["--dtype", "float32"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let config = json(&out.join("config.json"));
    assert_eq!(config["architectures"][0], "LlamaForSequenceClassification");
    assert_eq!(config["num_labels"], 1);
    assert_eq!(config["id2label"]["0"], "sweet");
    assert_eq!(config["problem_type"], "multi_label_classification");
    let weights = ferrotune_model::weights::Weights::open(&out).unwrap();
    assert_eq!(weights.shape("score.weight").unwrap(), vec![1, 64]);
    assert!(!weights.contains("lm_head.weight"));
    let o = export(&run, &dir.path().join("cls-gguf"), &["--format", "gguf"]);
    assert!(
        !o.status.success() && stderr(&o).contains("AutoModelForSequenceClassification"),
        "{}",
        stderr(&o)
    );

    let full = train_run(dir.path(), "full", &data, &["--training.lora", "false"]);
    let out = dir.path().join("full-hf");
    let o = export(&full, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("0 merged weights"), "{}", stderr(&o));
    let o = export(
        &full,
        &dir.path().join("full-lora"),
        &["--format", "gguf-adapter"],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("full fine-tuning"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_h2o_llm_studio_experiment_folder_is_registered_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // What H2O LLM Studio leaves: its cfg.yaml and the PEFT adapter in `adapter_model/`.
    let h2o = dir.path().join("h2o-run");
    std::fs::create_dir_all(&h2o).unwrap();
    let cfg = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tests/fixtures/h2o/causal_lm.yaml"),
    )
    .unwrap()
    .replace(
        "LLM_BACKBONE",
        &fixture("llama3_rope").display().to_string(),
    )
    .replace("TRAIN_DATAFRAME", "/gone/train.csv");
    std::fs::write(h2o.join("cfg.yaml"), cfg).unwrap();
    let adapter =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../train/tests/fixtures/lora_step/adapter");
    std::fs::create_dir_all(h2o.join("adapter_model")).unwrap();
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(adapter.join(f), h2o.join("adapter_model").join(f)).unwrap();
    }
    let cmd = |args: &[&str]| {
        ferrotune()
            .args(args)
            .env("FERROTUNE_HOME", &home)
            .output()
            .unwrap()
    };
    let o = cmd(&[
        "experiment",
        "import-h2o",
        h2o.to_str().unwrap(),
        "--name",
        "from-h2o",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cmd(&["experiment", "show", "from-h2o"]);
    let shown = String::from_utf8_lossy(&o.stdout).to_string() + &stderr(&o);
    assert!(
        shown.contains("finished") && shown.contains("imported from the H2O LLM Studio experiment"),
        "{shown}"
    );
    let out = dir.path().join("merged");
    let o = cmd(&[
        "export",
        "from-h2o",
        "--out",
        out.to_str().unwrap(),
        "--dtype",
        "float32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // H2O's own marker texts travel into the exported chat template.
    let template = std::fs::read_to_string(out.join("chat_template.jinja")).unwrap();
    assert!(
        template.contains("\"<|prompt|>\"") && template.contains("\"<|answer|>\""),
        "{template}"
    );
    // Refused: the same name again, and a folder without `adapter_model/`.
    let o = cmd(&[
        "experiment",
        "import-h2o",
        h2o.to_str().unwrap(),
        "--name",
        "from-h2o",
    ]);
    assert!(!o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(h2o.join("adapter_model")).unwrap();
    let o = cmd(&[
        "experiment",
        "import-h2o",
        h2o.to_str().unwrap(),
        "--name",
        "other",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("adapter_model/adapter_config.json"),
        "{}",
        stderr(&o)
    );
}
