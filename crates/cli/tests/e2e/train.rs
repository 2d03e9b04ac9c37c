//! `ferrotune train` end to end on the tiny llama fixture: the files a run leaves, the PEFT adapter used by
//! `generate --adapter`, exact resume after `kill -9`, a diverging loss, and bad data caught before training.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ferrotune, fixture, stderr};

/// A small arithmetic dataset (JSON, Alpaca columns) and a config that trains on it.
fn setup(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let rows: Vec<Value> = (0..40)
        .map(|i| serde_json::json!({"instruction": format!("Add {} and {}.", i, 2 * i), "input": "", "output": format!("{}", 3 * i)}))
        .collect();
    std::fs::write(dir.join("data.json"), serde_json::to_string(&rows).unwrap()).unwrap();
    let cfg = format!(
        "llm_backbone: {backbone}\noutput_directory: {out}/{{experiment_name}}\nexperiment_name: {name}\n\
         dataset:\n  train_dataframe: {data}\n  system_column: None\n  validation_size: 0.1\n\
         training:\n  learning_rate: 0.01\n  batch_size: 4\n{extra}\
         environment:\n  seed: 7\nprediction:\n  max_length_inference: 6\n",
        backbone = fixture("llama3_rope").display(),
        out = dir.display(),
        data = dir.join("data.json").display(),
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, cfg).unwrap();
    path
}

fn train(cfg: &Path, more: &[&str]) -> std::process::Output {
    ferrotune()
        .arg("train")
        .arg("--config")
        .arg(cfg)
        .args(more)
        .output()
        .unwrap()
}

fn status(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap()
}

fn tensors(dir: &Path) -> std::collections::HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(dir.join("adapter/adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let v = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, v)
        })
        .collect()
}

#[test]
fn a_run_leaves_its_files_and_a_peft_adapter_that_generate_uses() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(
        dir.path(),
        "basic",
        "  epochs: 2\n  evaluation_epochs: 0.5\n",
    );
    let o = train(&cfg, &["--training.lora_r", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = dir.path().join("basic");
    for f in [
        "cfg.yaml",
        "status.json",
        "logs.log",
        "metrics.jsonl",
        "first_batch.json",
        "validation_predictions.csv",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    assert_eq!(status(&run)["status"], "finished");
    let cfg_text = std::fs::read_to_string(run.join("cfg.yaml")).unwrap();
    assert!(
        cfg_text.contains("lora_r: 2"),
        "the override reaches the saved config"
    );
    let metrics: Vec<Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps = metrics.iter().filter(|m| m["event"] == "step").count();
    let evals = metrics
        .iter()
        .filter(|m| m["event"] == "evaluation")
        .count();
    assert_eq!(steps, 18, "2 epochs of 9 batches of 4 (36 training rows)");
    assert_eq!(evals, 4, "every half epoch");
    let adapter: Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("adapter/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(adapter["peft_type"], "LORA");
    assert_eq!(adapter["r"], 2);
    let names = tensors(&run);
    assert!(names.contains_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    assert!(names.contains_key("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
    let o = ferrotune()
        .args([
            "generate",
            "--model",
            fixture("llama3_rope").to_str().unwrap(),
            "--adapter",
            run.to_str().unwrap(),
            "--prompt",
            "Add 1 and 2.",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn resume_after_kill_9_ends_with_the_same_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "  epochs: 30\n  evaluation_epochs: 1\n  lora_dropout: 0.1\n";
    let full_cfg = setup(dir.path(), "full", extra);
    let o = train(&full_cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    let cut_cfg = setup(dir.path(), "cut", extra);
    let run = dir.path().join("cut");
    let mut child = ferrotune()
        .arg("train")
        .arg("--config")
        .arg(&cut_cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = std::fs::read_to_string(run.join("checkpoint/state.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok());
        if state.is_some_and(|s| s["position"]["optimizer_step"].as_u64().unwrap_or(0) >= 27) {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        status(&run)["status"],
        "running",
        "a killed run cannot update its status"
    );
    // What a process killed while staging a checkpoint leaves (the name of older releases' staging folder).
    let staged = run.join("checkpoint.tmp-999999");
    std::fs::create_dir(&staged).unwrap();
    let o = ferrotune()
        .arg("train")
        .arg("--resume")
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("died without writing how it ended"),
        "{}",
        stderr(&o)
    );
    assert!(!staged.exists(), "the leftover is cleaned");
    assert_eq!(status(&run)["status"], "finished");
    let (a, b) = (tensors(&dir.path().join("full")), tensors(&run));
    assert_eq!(a.len(), b.len());
    let mut max = 0f32;
    for (k, va) in &a {
        for (x, y) in va.iter().zip(&b[k]) {
            max = max.max((x - y).abs());
        }
    }
    assert!(max <= 1e-6, "resumed adapter differs by {max}");
}

#[test]
fn a_diverging_loss_fails_the_run_with_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(
        dir.path(),
        "nan",
        "  epochs: 3\n  optimizer: SGD\n  evaluation_epochs: 1\n",
    );
    let o = train(&cfg, &["--training.learning_rate", "1e30"]);
    assert!(!o.status.success());
    let run = dir.path().join("nan");
    let st = status(&run);
    assert_eq!(st["status"], "failed");
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains("at step") && msg.contains("learning_rate"),
        "{msg}"
    );
    assert!(stderr(&o).contains("at step"));
}

#[test]
fn r20_a_wrecked_run_is_failed_not_finished() {
    // At a learning rate of 1e6 the loss climbs to a uniform guess with a vanished gradient; that is a failure.
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "wreck", "  epochs: 2\n");
    let o = train(&cfg, &["--training.learning_rate", "1e6"]);
    assert!(!o.status.success(), "a wrecked run must not succeed");
    let st = status(&dir.path().join("wreck"));
    assert_eq!(st["status"], "failed");
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains("at step") && msg.contains("learning_rate"),
        "{msg}"
    );
}

#[test]
fn r20_divergence_keeps_the_last_good_checkpoint_and_it_resumes() {
    // Warmup makes the first step's learning rate 0, so the first evaluation and checkpoint are sound; the next
    // step's weights evaluate to NaN. The checkpoint on disk must stay the sound one, and resume from it with a
    // sane rate.
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(
        dir.path(),
        "burst",
        "  epochs: 1\n  optimizer: SGD\n  evaluation_epochs: 0.12\n  warmup_epochs: 0.5\n",
    );
    let o = train(&cfg, &["--training.learning_rate", "1e30"]);
    assert!(!o.status.success(), "{}", stderr(&o));
    let run = dir.path().join("burst");
    assert_eq!(status(&run)["status"], "failed");
    let kept = tensors(&run.join("checkpoint"));
    assert!(!kept.is_empty());
    assert!(
        kept.values()
            .flatten()
            .all(|v| v.is_finite() && v.abs() < 1e3),
        "the kept checkpoint holds sound weights"
    );
    let o = ferrotune()
        .args(["train", "--resume"])
        .arg(&run)
        .args([
            "--training.learning_rate",
            "0.001",
            "--training.warmup_epochs",
            "0",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(status(&run)["status"], "finished");
    assert!(tensors(&run).values().flatten().all(|v| v.is_finite()));
}

#[test]
fn bad_data_is_reported_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "bad", "");
    let o = train(&cfg, &["--dataset.answer_column", "response"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("response") && err.contains("output"),
        "names the column and the closest one: {err}"
    );
    assert!(!err.contains("panicked"));
    // The column check is a pre-flight check: a refused run leaves no folder behind.
    assert!(
        !dir.path().join("bad").exists(),
        "a refused run leaves nothing"
    );
}

#[test]
fn mixed_precision_keeps_f32_adapters_and_pretrained_weights_start_from_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "mixed", "  epochs: 1\n");
    let o = train(&cfg, &["--environment.mixed_precision", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = dir.path().join("mixed");
    let bytes = std::fs::read(first.join("adapter/adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(
        st.tensors()
            .iter()
            .all(|(_, v)| v.dtype() == safetensors::Dtype::F32),
        "adapters stay f32"
    );

    // A run with no training steps that starts from the first run's adapter saves exactly that adapter.
    let cfg = setup(dir.path(), "again", "  epochs: 0\n");
    let o = train(
        &cfg,
        &["--architecture.pretrained_weights", first.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tensors(&first), tensors(&dir.path().join("again")));
}

#[test]
fn intermediate_dropout_changes_training_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, p: &str| {
        let cfg = setup(dir.path(), name, "  epochs: 1\n  lora_dropout: 0.0\n");
        let o = train(&cfg, &["--architecture.intermediate_dropout", p]);
        assert!(o.status.success(), "{}", stderr(&o));
        tensors(&dir.path().join(name))
    };
    let (plain, a, b) = (
        run("plain", "0"),
        run("drop_a", "0.2"),
        run("drop_b", "0.2"),
    );
    assert_eq!(a, b, "seeded dropout is reproducible");
    assert_ne!(plain, a, "dropout changes the updates");
}

#[test]
fn parent_augmentations_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "augment", "  epochs: 2\n");
    let o = train(
        &cfg,
        &[
            "--augmentation.random_parent_probability",
            "0.5",
            "--augmentation.skip_parent_probability",
            "0.3",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(status(&dir.path().join("augment"))["status"], "finished");
    let o = train(
        &cfg,
        &[
            "--augmentation.random_parent_probability",
            "0.5",
            "--training.sample_packing",
            "true",
        ],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("sample_packing"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn gradient_checkpointing_trains_the_same_adapter() {
    let dir = tempfile::tempdir().unwrap();
    // Float32, a bfloat16 backbone (16-bit activations through the checkpointed layers) and an NF4 backbone.
    for dtype in ["float32", "bfloat16", "int4"] {
        let run = |on: &str| {
            let name = format!("{dtype}-{on}");
            let cfg = setup(dir.path(), &name, "  epochs: 1\n");
            let o = train(
                &cfg,
                &[
                    "--architecture.gradient_checkpointing",
                    on,
                    "--architecture.backbone_dtype",
                    dtype,
                ],
            );
            assert!(o.status.success(), "{dtype}: {}", stderr(&o));
            tensors(&dir.path().join(name))
        };
        let (plain, checkpointed) = (run("false"), run("true"));
        let mut max = 0f32;
        for (k, a) in &plain {
            for (x, y) in a.iter().zip(&checkpointed[k]) {
                max = max.max((x - y).abs());
            }
        }
        assert!(
            max <= 1e-5,
            "{dtype}: checkpointed training differs by {max}"
        );
    }
}

#[test]
fn train_validation_data_adds_the_validation_rows_and_steps_count_samples() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(
        dir.path(),
        "tvd",
        "  epochs: 1\n  train_validation_data: true\n",
    );
    let o = train(&cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = std::fs::read_to_string(dir.path().join("tvd/metrics.jsonl")).unwrap();
    let steps: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|m| m["event"] == "step")
        .collect();
    assert_eq!(
        steps.len(),
        10,
        "36 training + 4 validation rows in batches of 4"
    );
    assert_eq!(steps.last().unwrap()["samples_seen"], 40);
    // GPU ids on the CPU (as an H2O LLM Studio file from a GPU machine has them) run on the CPU, with a warning.
    std::fs::remove_dir_all(dir.path().join("tvd")).unwrap();
    let o = train(&cfg, &["--environment.gpus", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(dir.path().join("tvd/logs.log")).unwrap();
    assert!(
        log.contains("warning: `environment.gpus`: is `[0]` but has no effect unless `environment.device` is not `cpu`"),
        "{log}"
    );
}

#[test]
fn quantized_backbones_train_the_same_peft_adapter_layout_and_log_their_memory() {
    let dir = tempfile::tempdir().unwrap();
    let float_cfg = setup(
        dir.path(),
        "float",
        "  epochs: 1\n  evaluate_before_training: true\n",
    );
    let o = train(&float_cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let float_keys: std::collections::BTreeSet<String> =
        tensors(&dir.path().join("float")).into_keys().collect();
    for (dtype, name, storage) in [("int8", "q8", "int8"), ("int4", "q4", "NF4")] {
        let cfg = setup(
            dir.path(),
            name,
            "  epochs: 1\n  evaluate_before_training: true\n",
        );
        let o = train(&cfg, &["--architecture.backbone_dtype", dtype]);
        assert!(o.status.success(), "{dtype}: {}", stderr(&o));
        let run = dir.path().join(name);
        assert_eq!(status(&run)["status"], "finished");
        let log = std::fs::read_to_string(run.join("logs.log")).unwrap();
        assert!(log.contains("estimated peak memory"), "{dtype}: {log}");
        assert!(log.contains(&format!("as {storage}")), "{dtype}: {log}");
        // The adapter is the same PEFT file as for a float backbone, and training moved the loss.
        let keys: std::collections::BTreeSet<String> = tensors(&run).into_keys().collect();
        assert_eq!(keys, float_keys, "{dtype}");
        let evals: Vec<f64> = std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|m| m["event"] == "evaluation")
            .map(|m| m["validation_loss"].as_f64().unwrap())
            .collect();
        assert!(
            evals.len() >= 2 && evals[evals.len() - 1] < evals[0],
            "{dtype}: {evals:?}"
        );
        // Inference on the quantized backbone with the trained adapter.
        let o = ferrotune()
            .args([
                "generate",
                "--model",
                fixture("llama3_rope").to_str().unwrap(),
                "--dtype",
                dtype,
            ])
            .args([
                "--adapter",
                run.to_str().unwrap(),
                "--prompt",
                "Add 1 and 2.",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{dtype}: {}", stderr(&o));
    }
}

#[test]
fn a_dpo_experiment_from_config_init_trains_and_logs_its_rewards() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<Value> = (0..20)
        .map(|i| serde_json::json!({"instruction": format!("Add {} and {}.", i, 2 * i), "input": "", "chosen_response": format!("{}", 3 * i), "rejected_response": format!("{}", 3 * i + 5)}))
        .collect();
    let data = dir.path().join("pairs.json");
    std::fs::write(&data, serde_json::to_string(&rows).unwrap()).unwrap();
    let cfg = dir.path().join("dpo.yaml");
    let o = ferrotune()
        .args([
            "config",
            "init",
            "--problem-type",
            "text_dpo_modeling",
            "--out",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&cfg).unwrap();
    for line in [
        "problem_type: text_dpo_modeling",
        "answer_column: chosen_response",
        "rejected_answer_column: rejected_response",
        "loss_function: DPOLoss",
        "beta: 0.2",
    ] {
        assert!(text.contains(line), "`{line}` is not in config init's file");
    }
    let out = dir.path().join("run");
    let o = train(
        &cfg,
        &[
            "--llm_backbone",
            fixture("llama3_rope").to_str().unwrap(),
            "--dataset.train_dataframe",
            data.to_str().unwrap(),
            "--dataset.system_column",
            "None",
            "--dataset.validation_size",
            "0.2",
            "--output_directory",
            out.to_str().unwrap(),
            "--training.learning_rate",
            "0.01",
            "--prediction.max_length_inference",
            "4",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(status(&out)["status"], "finished");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let evaluation: Value = metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .rfind(|e| e["event"] == "evaluation")
        .unwrap();
    assert!(evaluation["rewards"]["margin"].is_f64(), "{evaluation}");
    assert!(out.join("adapter/adapter_model.safetensors").is_file());
    assert!(out.join("validation_predictions.csv").is_file());
}

#[test]
fn predict_writes_the_inputs_with_the_runs_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), "pred", "  epochs: 1\n");
    let o = train(&cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = dir.path().join("pred");
    // The same rows as training: each validation row's prediction must be the one the run's final
    // evaluation generated (same prompt, same prediction settings).
    let out = dir.path().join("predictions.csv");
    let o = ferrotune()
        .arg("predict")
        .arg(&run)
        .arg("--input")
        .arg(dir.path().join("data.json"))
        .arg("--output")
        .arg(&out)
        .args(["--batch-size", "16"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("40 rows"), "{}", stderr(&o));
    assert!(!dir.path().join("predictions.csv.partial").exists());
    let mut rows = csv::Reader::from_path(&out).unwrap();
    let header: Vec<String> = rows.headers().unwrap().iter().map(String::from).collect();
    let mut sorted = header.clone();
    sorted.sort();
    assert_eq!(sorted, ["input", "instruction", "output", "prediction"]);
    assert_eq!(
        header.last().map(String::as_str),
        Some("prediction"),
        "the input's columns, then the prediction"
    );
    let records: Vec<csv::StringRecord> = rows.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 40);
    let output_col = header.iter().position(|h| h == "output").unwrap();
    let prediction_col = header.len() - 1;
    let mut validation = csv::Reader::from_path(run.join("validation_predictions.csv")).unwrap();
    let mut matched = 0;
    for v in validation.records() {
        let v = v.unwrap();
        let (target, prediction) = (&v[1], &v[2]);
        let row = records
            .iter()
            .find(|r| &r[output_col] == target)
            .unwrap_or_else(|| panic!("no input row answers {target}"));
        assert_eq!(&row[prediction_col], prediction, "row answering {target}");
        matched += 1;
    }
    assert!(matched >= 4, "{matched} validation rows compared");

    // New data without the answer column; a run that is not there; an input that already has `prediction`.
    let new = dir.path().join("new.csv");
    std::fs::write(&new, "instruction,input\nAdd 2 and 4.,\nAdd 3 and 6.,\n").unwrap();
    let o = ferrotune()
        .arg("predict")
        .arg(&run)
        .args(["--input", new.to_str().unwrap(), "--output"])
        .arg(dir.path().join("new_out.csv"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.path().join("new_out.csv")).unwrap();
    assert!(
        text.starts_with("instruction,input,prediction\n") && text.lines().count() == 3,
        "{text}"
    );
    let o = ferrotune()
        .args([
            "predict",
            "no-such-experiment",
            "--input",
            new.to_str().unwrap(),
            "--output",
            "x.csv",
        ])
        .env("FERROTUNE_HOME", dir.path().join("home"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no experiment named `no-such-experiment`"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&new, "instruction,input,prediction\nAdd 2 and 4.,,old\n").unwrap();
    let o = ferrotune()
        .arg("predict")
        .arg(&run)
        .args(["--input", new.to_str().unwrap(), "--output"])
        .arg(dir.path().join("clash.csv"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already has a `prediction` column"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("clash.csv").exists());
}
