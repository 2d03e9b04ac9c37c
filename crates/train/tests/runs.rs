//! `run::run` end to end, in-process: the files a finished run leaves (status, metrics, first batch,
//! validation predictions, the PEFT adapter), and exact resume after a stop raised from the listener.

use ferrotune_test_support::{
    adapter_tensors, max_abs_diff, max_tensors_diff, model_fixture, read_json, read_jsonl,
    run_events, run_status,
};
use ferrotune_train::events::Event;

use crate::common::{experiment, plain, train, ROWS};

/// "21 training samples, 3 validation samples" from the run's log events.
fn sample_counts(logs: &[&str]) -> (usize, usize) {
    let line = logs
        .iter()
        .find(|l| l.ends_with(" validation samples"))
        .expect("the run logs its sample counts");
    let numbers: Vec<usize> = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn a_finished_run_leaves_its_status_metrics_first_batch_predictions_and_peft_adapter() {
    let (dir, ran) = plain();
    let (n_train, n_validation) = sample_counts(&ran.logs());
    assert_eq!(n_train + n_validation, ROWS);
    assert!(n_validation >= 1, "{n_validation} validation samples");
    let steps = n_train.div_ceil(4) as u64;

    let summary = &ran.summary;
    assert_eq!(summary.status.name(), "finished");
    assert_eq!(summary.steps, steps, "one epoch of batches of 4");
    assert_eq!(summary.output_dir, *dir);
    assert_eq!(
        summary.adapter_dir.as_deref(),
        Some(dir.join("adapter").as_path())
    );
    assert_eq!(summary.metric_name, "Perplexity");
    let status = run_status(dir);
    assert_eq!(status["status"], "finished");
    assert_eq!(status["message"], "");
    assert!(dir.join("cfg.yaml").is_file() && dir.join("logs.log").is_file());

    // metrics.jsonl holds every event the listener received, in order, one JSON line each.
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let received: Vec<String> = ran
        .events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), received);
    assert_eq!(read_jsonl(&dir.join("metrics.jsonl")).len(), received.len());
    // A fresh run into a fresh folder has nothing to warn about.
    let warnings: Vec<&str> = ran
        .logs()
        .into_iter()
        .filter(|l| l.starts_with("warning"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
    let step_events = run_events(dir, "step");
    let numbers: Vec<u64> = step_events
        .iter()
        .map(|e| e["step"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=steps).collect::<Vec<_>>());
    for e in &step_events {
        assert_eq!(e["total_steps"], steps);
        assert!(
            e["loss"].as_f64().unwrap().is_finite() && e["loss"].as_f64().unwrap() > 0.0,
            "{e}"
        );
    }
    // Cosine from the configured rate, without warmup.
    let lrs: Vec<f64> = step_events
        .iter()
        .map(|e| e["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(lrs[0], 0.01);
    assert!(
        lrs.windows(2).all(|w| w[1] < w[0]) && lrs[lrs.len() - 1] > 0.0,
        "{lrs:?}"
    );
    assert_eq!(step_events.last().unwrap()["samples_seen"], n_train);
    let evaluations = run_events(dir, "evaluation");
    assert_eq!(evaluations.len(), 2, "every half epoch");
    assert_eq!(evaluations.last().unwrap()["step"], steps);
    let last_loss = evaluations.last().unwrap()["validation_loss"]
        .as_f64()
        .unwrap();
    assert_eq!(summary.validation_loss, Some(last_loss));
    let perplexity = evaluations.last().unwrap()["perplexity"].as_f64().unwrap();
    assert!(
        (perplexity - last_loss.exp()).abs() <= 1e-6 * perplexity,
        "{perplexity} vs e^{last_loss}"
    );
    assert_eq!(
        run_events(dir, "checkpoint").len(),
        2,
        "a checkpoint after each evaluation"
    );
    let state = read_json(&dir.join("checkpoint/state.json"));
    assert_eq!(state["position"]["optimizer_step"], steps);
    assert_eq!(state["seed"], 7);

    // The first batch, decoded: four rows, each a masked prompt then the trained answer.
    let batch = read_json(&dir.join("first_batch.json"));
    let rows = batch["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        let segments = row["segments"].as_array().unwrap();
        assert_eq!(segments[0]["masked"], true, "{row}");
        assert!(
            segments[0]["text"].as_str().unwrap().contains("Add "),
            "{row}"
        );
        assert!(segments.iter().any(|s| s["masked"] == false), "{row}");
        assert_eq!(
            row["input_ids"].as_array().unwrap().len(),
            row["labels"].as_array().unwrap().len()
        );
    }

    // One prediction per validation sample, with its perplexity.
    let table = ferrotune_data::read_table(&dir.join("validation_predictions.csv")).unwrap();
    assert_eq!(
        table.columns,
        ["prompt", "target", "prediction", "Perplexity"]
    );
    assert_eq!(table.len(), n_validation);
    for r in 0..table.len() {
        assert!(table.text(r, 0).contains("Add "), "{}", table.text(r, 0));
        assert!(table.text(r, 3).parse::<f64>().unwrap().is_finite());
    }

    // The adapter in PEFT's format, for the fixture backbone.
    let config = read_json(&dir.join("adapter/adapter_config.json"));
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    assert_eq!(config["lora_alpha"].as_f64(), Some(16.0));
    assert_eq!(
        config["base_model_name_or_path"],
        model_fixture("llama3_rope").display().to_string()
    );
    let tensors = adapter_tensors(dir);
    assert!(tensors.contains_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    assert!(tensors.contains_key("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
    // PEFT initializes B to zero; training moved every B.
    for (name, values) in tensors.iter().filter(|(n, _)| n.contains("lora_B")) {
        assert!(values.iter().any(|v| *v != 0.0), "{name} is still zero");
    }
}

#[test]
fn a_run_stopped_from_the_listener_resumes_to_the_adapter_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    // Dropout and two epochs: the resumed run must continue the data order and the random draws exactly.
    let overrides = [("training.epochs", "2"), ("training.lora_dropout", "0.1")];
    let full = train(&experiment(dir.path(), "full", &overrides), false, None);
    assert_eq!(full.summary.status.name(), "finished");
    let total = full.summary.steps;
    assert!(total >= 8, "{total} steps");

    // Stopped in the second epoch, between evaluations.
    let stop_at = total / 2 + 2;
    let cut_cfg = experiment(dir.path(), "cut", &overrides);
    let cut_dir = cut_cfg.output_dir();
    let stopped = train(&cut_cfg, false, Some(stop_at));
    assert_eq!(stopped.summary.status.name(), "stopped");
    assert_eq!(stopped.summary.steps, stop_at);
    assert_eq!(stopped.summary.adapter_dir, None, "no final adapter yet");
    assert!(!cut_dir.join("adapter").exists());
    assert_eq!(run_status(&cut_dir)["status"], "stopped");
    let state = read_json(&cut_dir.join("checkpoint/state.json"));
    assert_eq!(state["position"]["optimizer_step"], stop_at);
    let last_checkpoint = stopped.events.iter().rev().find_map(|e| match e {
        Event::Checkpoint { step, .. } => Some(*step),
        _ => None,
    });
    assert_eq!(
        last_checkpoint,
        Some(stop_at),
        "a checkpoint where it stopped"
    );

    let resumed = train(&cut_cfg, true, None);
    assert_eq!(resumed.summary.status.name(), "finished");
    assert_eq!(resumed.summary.steps, total);
    assert!(resumed
        .logs()
        .contains(&format!("resuming at step {stop_at}").as_str()));
    assert_eq!(run_status(&cut_dir)["status"], "finished");
    let warnings: Vec<&str> = resumed
        .logs()
        .into_iter()
        .filter(|l| l.starts_with("warning"))
        .collect();
    assert!(
        warnings.is_empty(),
        "resuming in its own folder is no reason to warn: {warnings:?}"
    );
    let diff = max_tensors_diff(
        &adapter_tensors(&full.summary.output_dir),
        &adapter_tensors(&cut_dir),
    );
    assert!(diff <= 1e-6, "the resumed adapter differs by {diff}");

    // metrics.jsonl of the cut run has every step once, with the uninterrupted run's losses.
    let steps = run_events(&cut_dir, "step");
    let numbers: Vec<u64> = steps.iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (1..=total).collect::<Vec<_>>());
    let losses: Vec<f32> = steps
        .iter()
        .map(|e| e["loss"].as_f64().unwrap() as f32)
        .collect();
    let want: Vec<f32> = full.losses().iter().map(|l| *l as f32).collect();
    let d = max_abs_diff(&losses, &want);
    assert!(d <= 1e-6, "step losses differ by {d}");
    assert_eq!(
        resumed.validation_losses().last(),
        full.validation_losses().last(),
        "the same final evaluation"
    );
}

#[test]
fn early_stopping_ends_the_run_finished_and_keeps_the_best_evaluations_weights() {
    let dir = tempfile::tempdir().unwrap();
    // A threshold no change reaches: after the first evaluation nothing counts as an improvement, so patience 2
    // ends the run at the third evaluation of eight.
    let cfg = experiment(
        dir.path(),
        "early",
        &[
            ("training.epochs", "2"),
            ("training.evaluation_epochs", "0.25"),
            ("training.early_stopping_patience", "2"),
            ("training.early_stopping_threshold", "1000000"),
            ("training.save_checkpoint", "each_evaluation_epoch"),
        ],
    );
    let ran = train(&cfg, false, None);
    let evaluations: Vec<u64> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Evaluation { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(evaluations.len(), 3, "{evaluations:?}");
    assert_eq!(ran.summary.status.name(), "finished");
    assert_eq!(ran.summary.steps, evaluations[2]);
    assert!(
        ran.summary.message.starts_with(&format!(
            "stopped early at step {}: Perplexity did not improve by more than 1000000 for 2 evaluations; the result is the best evaluation's weights (Perplexity ",
            evaluations[2]
        )) && ran.summary.message.ends_with(&format!("at step {})", evaluations[0])),
        "{}",
        ran.summary.message
    );
    let run = ferrotune_home::RunDir::new(cfg.output_dir());
    assert_eq!(
        ferrotune_test_support::run_status(run.root())["message"],
        ran.summary.message.as_str()
    );
    // The result is the first (best) evaluation's adapter, not the last one's.
    let result = ferrotune_test_support::adapter_tensors(run.root());
    let best = ferrotune_test_support::read_f32_tensors(
        &run.adapter_at_step(evaluations[0])
            .join("adapter_model.safetensors"),
    );
    let last = ferrotune_test_support::read_f32_tensors(
        &run.adapter_at_step(evaluations[2])
            .join("adapter_model.safetensors"),
    );
    assert_eq!(
        ferrotune_test_support::max_tensors_diff(&result, &best),
        0.0
    );
    assert!(ferrotune_test_support::max_tensors_diff(&result, &last) > 0.0);
    // Resuming keeps the count: a run stopped after the second evaluation stops at the third when resumed.
    let dir2 = tempfile::tempdir().unwrap();
    let cfg2 = experiment(
        dir2.path(),
        "early",
        &[
            ("training.epochs", "2"),
            ("training.evaluation_epochs", "0.25"),
            ("training.early_stopping_patience", "2"),
            ("training.early_stopping_threshold", "1000000"),
        ],
    );
    let first = train(&cfg2, false, Some(evaluations[1] + 1));
    assert_eq!(first.summary.status.name(), "stopped");
    let resumed = train(&cfg2, true, None);
    assert_eq!(resumed.summary.status.name(), "finished");
    assert_eq!(resumed.summary.steps, evaluations[2]);
}
