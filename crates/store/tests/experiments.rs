//! Experiments without training: planning (dataset, grid, validation), the all-or-none queue, the lifecycle's
//! refusals with their fixes, and crash detection by readers. The runner is tested through the binary
//! (`crates/cli/tests/experiment.rs`).

use ferrotune_store::{Error, StartOptions, Status, Stopped};

use crate::common::TestHome;

fn no_checks(_: &ferrotune_config::Experiment) -> Vec<ferrotune_config::Issue> {
    Vec::new()
}

fn options(h: &TestHome, yaml: &str, name: &str) -> StartOptions {
    StartOptions {
        config: h.file(&format!("{name}.yaml"), yaml).into(),
        name: Some(name.into()),
        ..StartOptions::default()
    }
}

fn alpaca(rows: usize) -> String {
    let items: Vec<serde_json::Value> = (0..rows)
        .map(|i| serde_json::json!({"instruction": format!("say {i}"), "input": "", "output": format!("{i}")}))
        .collect();
    serde_json::to_string(&items).unwrap()
}

/// A home with dataset `d` (with a validation table) and a config file training on a plain file.
fn setup() -> (TestHome, String) {
    let mut h = TestHome::new();
    let train = h.file("train.json", alpaca(6));
    let valid = h.file("valid.json", alpaca(2));
    h.store
        .import_dataset(&ferrotune_store::ImportOptions {
            name: "d".into(),
            train,
            validation: Some(valid),
            mapping: Default::default(),
        })
        .unwrap();
    let data = h.file("data.json", alpaca(6));
    let yaml = format!("dataset:\n  train_dataframe: {}\n", data.display());
    (h, yaml)
}

#[test]
fn a_plan_points_at_the_dataset_and_the_experiment_folder() {
    let (h, yaml) = setup();
    let mut opts = options(&h, &yaml, "exp");
    opts.dataset = Some("d".into());
    let plan = h.store.plan_experiments(&opts, &no_checks).unwrap();
    let cfg = &plan.experiments[0].config;
    let root = h.home().root().to_path_buf();
    assert_eq!(
        cfg.dataset.train_dataframe,
        root.join("datasets/d/train.jsonl").display().to_string()
    );
    assert_eq!(
        cfg.dataset.validation_dataframe,
        root.join("datasets/d/validation.jsonl")
            .display()
            .to_string()
    );
    assert_eq!(cfg.dataset.prompt_column, ["prompt"]);
    assert_eq!(cfg.dataset.answer_column, "answer");
    assert_eq!(cfg.experiment_name, "exp");
    assert_eq!(
        cfg.output_dir(),
        root.join("experiments/exp"),
        "the folder is in the home"
    );
    assert!(
        cfg.environment.seed >= 0,
        "the seed is drawn once, at start"
    );
    assert_eq!(plan.dataset.as_deref(), Some("d"));
    opts.dataset = Some("dd".into());
    let err = h.store.plan_experiments(&opts, &no_checks).unwrap_err();
    assert!(err.to_string().contains("did you mean `d`"), "{err}");
}

#[test]
fn every_bad_setting_and_extra_check_is_reported() {
    let (h, yaml) = setup();
    let bad = format!("{yaml}training:\n  learning_rate: -1\n  batch_size: 0\n");
    let err = h
        .store
        .plan_experiments(&options(&h, &bad, "bad"), &|_| {
            vec![ferrotune_config::Issue::new("", "not in this release")]
        })
        .unwrap_err();
    let text = err.to_string();
    for needle in [
        "training.learning_rate",
        "training.batch_size",
        "not in this release",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let err = h
        .store
        .plan_experiments(&options(&h, &yaml, "a b"), &no_checks)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidExperimentName { .. }), "{err}");
}

#[test]
fn a_grid_is_queued_all_or_none() {
    let (mut h, yaml) = setup();
    let grid = format!("grid_search: true\n{yaml}training:\n  lora_r: [2, 4]\n");
    let plan = h
        .store
        .plan_experiments(&options(&h, &grid, "g"), &no_checks)
        .unwrap();
    let names: Vec<&str> = plan.experiments.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["g-r2", "g-r4"]);
    let queued = h.store.queue_experiments(&plan).unwrap();
    assert!(queued.iter().all(|e| e.status == Status::Queued));
    let cfg = std::fs::read_to_string(h.home().experiments().join("g-r4/cfg.yaml")).unwrap();
    assert!(
        cfg.contains("lora_r: 4") && cfg.contains("experiment_name: g-r4"),
        "{cfg}"
    );
    // Queuing the same names again changes nothing.
    let err = h.store.queue_experiments(&plan).unwrap_err();
    assert!(
        matches!(err, Error::ExperimentExists { ref name } if name == "g-r2"),
        "{err}"
    );
    // A folder nobody registered blocks its name, and the other experiment of the plan is not queued either.
    let plan = h
        .store
        .plan_experiments(&options(&h, &grid, "h"), &no_checks)
        .unwrap();
    std::fs::create_dir_all(h.home().experiments().join("h-r4")).unwrap();
    let err = h.store.queue_experiments(&plan).unwrap_err();
    assert!(err.to_string().contains("--rebuild-index"), "{err}");
    assert!(!h.home().experiments().join("h-r2").exists());
    assert_eq!(h.store.experiments().unwrap().len(), 2);
    assert_eq!(
        h.store.unindexed_experiments().unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn lifecycle_commands_refuse_with_the_fix() {
    let (mut h, yaml) = setup();
    let plan = h
        .store
        .plan_experiments(&options(&h, &yaml, "e"), &no_checks)
        .unwrap();
    h.store.queue_experiments(&plan).unwrap();
    assert_eq!(h.store.stop_experiment("e").unwrap(), Stopped::Unqueued);
    let e = h.store.experiment("e").unwrap();
    assert_eq!(e.status, Status::Stopped);
    let err = h.store.stop_experiment("e").unwrap_err().to_string();
    assert!(err.contains("is stopped, so it cannot be stopped"), "{err}");
    let err = h.store.resume_experiment("e").unwrap_err().to_string();
    assert!(
        err.contains("no checkpoint") && err.contains("experiment restart e"),
        "{err}"
    );
    let e = h.store.restart_experiment("e").unwrap();
    assert_eq!((e.status, e.resume), (Status::Queued, false));
    let err = h.store.restart_experiment("e").unwrap_err().to_string();
    assert!(err.contains("experiment stop e"), "{err}");
    let e = h.store.rename_experiment("e", "f").unwrap();
    assert_eq!(e.output_dir, h.home().experiments().join("f"));
    let cfg = std::fs::read_to_string(e.output_dir.join("cfg.yaml")).unwrap();
    assert!(cfg.contains("experiment_name: f"), "{cfg}");
    assert!(!h.home().experiments().join("e").exists());
    let err = h.store.experiment("e").unwrap_err().to_string();
    assert!(err.contains("no experiment named `e`"), "{err}");
    h.store.delete_experiment("f").unwrap();
    assert!(h.store.experiments().unwrap().is_empty());
    assert!(!h.home().experiments().join("f").exists());
}

#[test]
fn a_running_experiment_whose_process_is_gone_is_failed_by_readers() {
    let (mut h, yaml) = setup();
    let plan = h
        .store
        .plan_experiments(&options(&h, &yaml, "crash"), &no_checks)
        .unwrap();
    let info = h.store.queue_experiments(&plan).unwrap().remove(0);
    // A process that has ended: its pid is free (or reused by another program, which the start time tells apart).
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    std::fs::write(
        info.output_dir.join("logs.log"),
        "step 1\nerror: out of memory\n",
    )
    .unwrap();
    std::fs::write(
        info.output_dir.join("status.json"),
        r#"{"status":"running","message":""}"#,
    )
    .unwrap();
    let conn = rusqlite::Connection::open(h.home().registry()).unwrap();
    conn.execute(
        "UPDATE experiments SET status = 'running', pid = ?1, pid_start = 1 WHERE name = 'crash'",
        [pid],
    )
    .unwrap();
    let e = h.store.experiment("crash").unwrap();
    assert_eq!(e.status, Status::Failed);
    let msg = e.message.unwrap();
    assert!(
        msg.starts_with("process ended unexpectedly") && msg.contains("out of memory"),
        "{msg}"
    );
    // A run that wrote its outcome before its process went is recorded as it says.
    conn.execute(
        "UPDATE experiments SET status = 'running', pid = ?1, pid_start = 1 WHERE name = 'crash'",
        [pid],
    )
    .unwrap();
    std::fs::write(
        info.output_dir.join("status.json"),
        r#"{"status":"finished","message":""}"#,
    )
    .unwrap();
    assert_eq!(h.store.experiments().unwrap()[0].status, Status::Finished);
}

#[test]
fn a_dpo_plan_on_a_registered_dataset_of_pairs_reads_its_columns() {
    let mut h = TestHome::new();
    let rows: Vec<serde_json::Value> = (0..8)
        .map(|i| serde_json::json!({"conversations": [{"from": "human", "value": format!("say {i}")}], "chosen": {"from": "gpt", "value": format!("{i}")}, "rejected": {"from": "gpt", "value": "no"}}))
        .collect();
    let train = h.file("pairs.json", serde_json::to_string(&rows).unwrap());
    h.store
        .import_dataset(&ferrotune_store::ImportOptions {
            name: "pairs".into(),
            train,
            validation: None,
            mapping: Default::default(),
        })
        .unwrap();
    let mut opts = options(&h, "problem_type: text_dpo_modeling\n", "dpo");
    opts.dataset = Some("pairs".into());
    // The real column check (it reads the canonical table's header).
    let plan = h
        .store
        .plan_experiments(&opts, &ferrotune_train_like_column_check)
        .unwrap();
    let d = &plan.experiments[0].config.dataset;
    assert_eq!(
        (d.answer_column.first(), d.rejected_answer_column.as_str()),
        ("chosen_response", "rejected_response")
    );
}

/// The dataset columns a config names, checked against its training table's header (what the train crate's
/// pre-flight does, without depending on it).
fn ferrotune_train_like_column_check(
    cfg: &ferrotune_config::Experiment,
) -> Vec<ferrotune_config::Issue> {
    let settings = ferrotune_data::DatasetSettings::from_experiment(cfg);
    match ferrotune_data::check_columns(&settings) {
        Ok(()) => Vec::new(),
        Err(e) => vec![ferrotune_config::Issue::new("dataset", e.to_string())],
    }
}

#[test]
fn a_classification_plan_on_a_registered_dataset_reads_its_labels_from_the_answer() {
    let mut h = TestHome::new();
    let mut csv = String::from("text,label\n");
    for i in 0..8 {
        csv.push_str(&format!(
            "review {i},{}\n",
            if i % 2 == 0 { "good" } else { "bad" }
        ));
    }
    let train = h.file("reviews.csv", csv);
    h.store
        .import_dataset(&ferrotune_store::ImportOptions {
            name: "reviews".into(),
            train,
            validation: None,
            // The mapping step: the label column is the answer.
            mapping: ferrotune_data::import::Mapping {
                prompt: vec!["text".into()],
                answer: Some("label".into()),
                ..Default::default()
            },
        })
        .unwrap();
    let mut opts = options(
        &h,
        "problem_type: text_causal_classification_modeling\n",
        "classify",
    );
    opts.dataset = Some("reviews".into());
    let plan = h
        .store
        .plan_experiments(&opts, &ferrotune_train_like_column_check)
        .unwrap();
    let cfg = &plan.experiments[0].config;
    assert_eq!(cfg.dataset.answer_column, "answer");
    // The labels read from the canonical table: two named classes.
    let settings = ferrotune_data::DatasetSettings::from_experiment(cfg);
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures/llama3_rope");
    let tokenizer = ferrotune_data::TextTokenizer::from_dir(&fixture).unwrap();
    let data = ferrotune_data::prepare(&settings, &tokenizer).unwrap();
    let targets = data.targets.unwrap();
    assert_eq!(targets.classes, Some(vec!["bad".into(), "good".into()]));
    assert_eq!(targets.train.len() + targets.validation.len(), 8);
}
