//! Preference tuning (`text_dpo_modeling`) end to end on the tiny backbone: the first step sits at the reference
//! (DPO loss ln 2), training raises the reward margin, every loss runs, the rewards reach `metrics.jsonl`, and
//! bad pairs are refused before a run folder exists. The losses' parity with TRL is in `dpo_parity`.

use std::path::{Path, PathBuf};

use ferrotune_test_support::{adapter_tensors, max_tensors_diff, write_file};
use ferrotune_train::events::Event;

use crate::common::{experiment_on, train, Ran};

/// Pairs on arithmetic: the chosen answer is the sum, the rejected one is off by a few.
fn write_pairs(dir: &Path, rows: usize) -> PathBuf {
    let rows: Vec<serde_json::Value> = (0..rows)
        .map(|i| {
            serde_json::json!({
                "instruction": format!("Add {} and {}.", i, 2 * i),
                "input": "",
                "chosen_response": format!("{}", 3 * i),
                "rejected_response": format!("{} or so", 3 * i + 7),
            })
        })
        .collect();
    write_file(dir, "pairs.json", serde_json::to_string(&rows).unwrap())
}

const DPO: &[(&str, &str)] = &[
    ("problem_type", "text_dpo_modeling"),
    ("training.evaluate_before_training", "true"),
];

fn rewards_of_evaluations(ran: &Ran) -> Vec<ferrotune_home::Rewards> {
    ran.events
        .iter()
        .filter_map(|e| match e {
            Event::Evaluation { rewards, .. } => *rewards,
            _ => None,
        })
        .collect()
}

#[test]
fn a_dpo_run_starts_at_the_reference_and_raises_the_margin() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_pairs(dir.path(), 40);
    let mut overrides = DPO.to_vec();
    overrides.extend([("training.epochs", "3"), ("dataset.validation_size", "0.2")]);
    let cfg = experiment_on(dir.path(), "dpo", &data, &overrides);
    assert_eq!(
        cfg.dataset.answer_column, "chosen_response",
        "DPO's default"
    );
    let ran = train(&cfg, false, None);
    assert_eq!(ran.summary.status.name(), "finished");
    let losses = ran.losses();
    // The adapters start with B = 0: the policy is the reference, so every pair's logits are 0.
    assert!(
        (losses[0] - std::f64::consts::LN_2).abs() < 1e-6,
        "first step loss {} is not ln 2",
        losses[0]
    );
    let first_step_rewards = ran
        .events
        .iter()
        .find_map(|e| match e {
            Event::Step { rewards, .. } => *rewards,
            _ => None,
        })
        .expect("steps carry rewards");
    assert!(
        first_step_rewards.margin.abs() < 1e-6,
        "{first_step_rewards:?}"
    );
    let evaluations = rewards_of_evaluations(&ran);
    let (before, after) = (evaluations[0], *evaluations.last().unwrap());
    assert!(before.margin.abs() < 1e-6, "before training: {before:?}");
    assert!(
        after.margin > 0.5 && after.accuracy > 0.9,
        "the margin did not rise: before {before:?}, after {after:?}"
    );
    let validation = ran.validation_losses();
    assert!(
        validation.last().unwrap() < &validation[0],
        "validation DPO loss did not fall: {validation:?}"
    );
    // The rewards reach metrics.jsonl for the studio's charts.
    let metrics = std::fs::read_to_string(cfg.output_dir().join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"rewards\":{\"chosen\":"), "{metrics}");
    // The adapter is saved as for causal LM (PEFT layout).
    assert!(cfg
        .output_dir()
        .join("adapter/adapter_model.safetensors")
        .is_file());
}

#[test]
fn every_preference_loss_trains() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_pairs(dir.path(), 16);
    for loss in [
        "DPOLoss",
        "DPOHingeLoss",
        "DPOIPOLoss",
        "KTOPairLoss",
        "CPOLoss",
        "SimPOLoss",
        "ORPOLoss",
    ] {
        let name = format!("loss-{loss}");
        let mut overrides = DPO.to_vec();
        overrides.extend([
            ("training.loss_function", loss),
            ("dataset.validation_size", "0.25"),
        ]);
        let cfg = experiment_on(dir.path(), &name, &data, &overrides);
        let ran = train(&cfg, false, None);
        assert_eq!(ran.summary.status.name(), "finished", "{loss}");
        let losses = ran.losses();
        assert!(losses.iter().all(|l| l.is_finite()), "{loss}: {losses:?}");
        let evaluations = rewards_of_evaluations(&ran);
        let (before, after) = (evaluations[0], *evaluations.last().unwrap());
        assert!(
            after.margin > before.margin,
            "{loss}: the margin did not rise: {before:?} → {after:?}"
        );
    }
}

#[test]
fn bad_pairs_are_refused_before_a_run_folder_exists() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_pairs(dir.path(), 8);
    let mut overrides = DPO.to_vec();
    overrides.push(("dataset.rejected_answer_column", "rejected"));
    let cfg = experiment_on(dir.path(), "missing", &data, &overrides);
    let err = ferrotune_train::run::preflight(&cfg, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no column `rejected`") && err.contains("did you mean `rejected_response`?"),
        "{err}"
    );
    assert!(!cfg.output_dir().exists());

    let same: Vec<serde_json::Value> = (0..8)
        .map(|i| serde_json::json!({"instruction": format!("q{i}"), "input": "", "chosen_response": "a", "rejected_response": "a"}))
        .collect();
    let same = write_file(
        dir.path(),
        "same.json",
        serde_json::to_string(&same).unwrap(),
    );
    let cfg = experiment_on(dir.path(), "same", &same, DPO);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let home = ferrotune_home::Home::new(dir.path().join("home"));
    let err = ferrotune_train::run::run(
        ferrotune_train::run::RunRequest {
            config: &cfg,
            home: &home,
            resume: false,
            stop: &stop,
        },
        &mut |_: &Event| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("every rejected answer (column `rejected_response`) equals its chosen answer"),
        "{err}"
    );

    let mut overrides = DPO.to_vec();
    overrides.push(("training.lora", "false"));
    let cfg = experiment_on(dir.path(), "full", &data, &overrides);
    let err = ferrotune_train::run::preflight(&cfg, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("reference model is the backbone with the adapters switched off"),
        "{err}"
    );
}

#[test]
fn a_stopped_dpo_run_resumes_to_the_adapter_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_pairs(dir.path(), 24);
    let mut overrides = DPO.to_vec();
    overrides.extend([("training.epochs", "2"), ("training.lora_dropout", "0.1")]);
    let full_cfg = experiment_on(dir.path(), "full", &data, &overrides);
    let full = train(&full_cfg, false, None);
    let total = full.summary.steps;
    let cut_cfg = experiment_on(dir.path(), "cut", &data, &overrides);
    let stopped = train(&cut_cfg, false, Some(total / 2 + 1));
    assert_eq!(stopped.summary.status.name(), "stopped");
    let resumed = train(&cut_cfg, true, None);
    assert_eq!(resumed.summary.status.name(), "finished");
    let diff = max_tensors_diff(
        &adapter_tensors(&full_cfg.output_dir()),
        &adapter_tensors(&cut_cfg.output_dir()),
    );
    assert!(diff <= 1e-6, "the resumed adapter differs by {diff}");
    assert_eq!(
        resumed.validation_losses().last(),
        full.validation_losses().last()
    );
}
