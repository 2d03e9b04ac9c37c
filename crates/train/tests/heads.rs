//! Classification and regression end to end on the tiny backbone: the head learns (AUC and MSE improve over
//! the evaluation before training), the head and label mapping are saved with the adapter, the validation
//! predictions carry probabilities or values, `predict` applies the head to a new file, a stopped run resumes
//! to the same head, and bad labels are refused before a run folder exists.

use std::path::{Path, PathBuf};

use ferrotune_test_support::write_file;
use ferrotune_train::events::Event;
use ferrotune_train::head::{Head, LABEL_MAPPING_FILE};

use crate::common::{experiment_on, train, Ran};

const WORDS: [&str; 8] = [
    "apple", "pear", "plum", "fig", "stone", "brick", "sand", "clay",
];

/// Rows whose label is decided by their last word: fruit (`sweet`) or not (`plain`); the score is 2 for a
/// fruit and −1 otherwise, the count of the row its second target.
fn write_rows(dir: &Path, rows: usize) -> PathBuf {
    let rows: Vec<serde_json::Value> = (0..rows)
        .map(|i| {
            let word = WORDS[(i * 5 + i / 8) % WORDS.len()];
            let fruit = WORDS[..4].contains(&word);
            serde_json::json!({
                "instruction": format!("Item {i} is a {word}"),
                "input": "",
                "label": if fruit { "sweet" } else { "plain" },
                "score": if fruit { 2.0 } else { -1.0 },
                "count": (i % 3) as f64,
            })
        })
        .collect();
    write_file(dir, "labels.json", serde_json::to_string(&rows).unwrap())
}

fn metrics(ran: &Ran) -> Vec<f64> {
    ran.events
        .iter()
        .filter_map(|e| match e {
            Event::Evaluation { metric, .. } => Some(*metric),
            _ => None,
        })
        .collect()
}

const COMMON: &[(&str, &str)] = &[
    ("training.evaluate_before_training", "true"),
    ("training.epochs", "4"),
    ("training.learning_rate", "0.003"),
    ("dataset.validation_size", "0.25"),
];

#[test]
fn a_classifier_learns_and_saves_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_rows(dir.path(), 48);
    let mut overrides = vec![("problem_type", "text_causal_classification_modeling")];
    overrides.extend(COMMON);
    let cfg = experiment_on(dir.path(), "classify", &data, &overrides);
    assert_eq!(cfg.dataset.answer_column, "label", "the type's default");
    assert_eq!(cfg.prediction.metric.as_str(), "AUC");
    let ran = train(&cfg, false, None);
    assert_eq!(ran.summary.status.name(), "finished");
    let auc = metrics(&ran);
    let (before, after) = (auc[0], *auc.last().unwrap());
    assert!(
        after > 0.95 && after > before,
        "AUC before {before}, after {after}"
    );

    let adapter = cfg.output_dir().join("adapter");
    let head = Head::load(&adapter).unwrap();
    assert_eq!(
        head.mapping.classes,
        Some(vec!["plain".into(), "sweet".into()])
    );
    assert_eq!(head.weight.as_tensor().dims(), &[1, 64]);
    assert!(adapter.join("classification_head.safetensors").is_file());
    assert!(adapter.join(LABEL_MAPPING_FILE).is_file());
    let predictions =
        std::fs::read_to_string(cfg.output_dir().join("validation_predictions.csv")).unwrap();
    let mut lines = predictions.lines();
    assert_eq!(
        lines.next(),
        Some("prompt,target,prediction,probability_sweet")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 12);
    let right = rows
        .iter()
        .filter(|r| {
            let f: Vec<&str> = r.rsplitn(3, ',').collect();
            // probability, prediction, prompt+target
            f[2].ends_with(f[1])
        })
        .count();
    assert!(right >= 11, "{predictions}");

    // `predict` on new rows: the class name and its probability, batch by batch.
    let input = write_file(
        dir.path(),
        "new.csv",
        "instruction,input\nItem 99 is a plum,\nItem 98 is a brick,\n",
    );
    let output = dir.path().join("out.csv");
    let run = ferrotune_home::RunDir::new(cfg.output_dir());
    let home = ferrotune_home::Home::new(std::env::temp_dir().join("ferrotune-tests-home"));
    let summary = ferrotune_train::predict::predict(
        &ferrotune_train::predict::PredictRequest {
            run: &run,
            home: &home,
            input: &input,
            output: &output,
            batch_size: 2,
            device: &ferrotune_model::Device::Cpu,
        },
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(summary.rows, 2);
    let text = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "instruction,input,prediction,probability_sweet");
    assert!(lines[1].starts_with("Item 99 is a plum,,sweet,"), "{text}");
    assert!(lines[2].starts_with("Item 98 is a brick,,plain,"), "{text}");
}

#[test]
fn a_multiclass_run_stops_and_resumes_to_the_same_head() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_rows(dir.path(), 32);
    let base = [
        ("problem_type", "text_causal_classification_modeling"),
        ("training.loss_function", "CrossEntropyLoss"),
        ("dataset.num_classes", "3"),
        ("dataset.answer_column", "count"),
        ("prediction.metric", "Accuracy"),
        ("training.epochs", "2"),
        ("training.evaluation_epochs", "0.5"),
    ];
    let whole = experiment_on(dir.path(), "whole", &data, &base);
    train(&whole, false, None);
    let cut = experiment_on(dir.path(), "cut", &data, &base);
    let stopped = train(&cut, false, Some(3));
    assert_eq!(stopped.summary.status.name(), "stopped");
    let resumed = train(&cut, true, None);
    assert_eq!(resumed.summary.status.name(), "finished");
    let a = Head::load(&whole.output_dir().join("adapter")).unwrap();
    let b = Head::load(&cut.output_dir().join("adapter")).unwrap();
    assert_eq!(a.mapping.outputs, 3);
    assert_eq!(a.mapping.classes, None, "integer labels are indices");
    let diff = (a.weight.as_tensor() - b.weight.as_tensor())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-6, "resumed head differs by {diff}");
    let header =
        std::fs::read_to_string(whole.output_dir().join("validation_predictions.csv")).unwrap();
    assert!(
        header.starts_with("prompt,target,prediction,probability_0,probability_1,probability_2"),
        "{header}"
    );
}

#[test]
fn a_regressor_lowers_its_error_on_two_targets() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_rows(dir.path(), 48);
    let mut overrides = vec![
        ("problem_type", "text_causal_regression_modeling"),
        ("dataset.answer_column", "[score, count]"),
    ];
    overrides.extend(COMMON);
    let cfg = experiment_on(dir.path(), "regress", &data, &overrides);
    assert_eq!(cfg.dataset.answer_column.names(), ["score", "count"]);
    let ran = train(&cfg, false, None);
    let mse = metrics(&ran);
    let (before, after) = (mse[0], *mse.last().unwrap());
    assert!(after < 0.5 * before, "MSE before {before}, after {after}");
    let predictions =
        std::fs::read_to_string(cfg.output_dir().join("validation_predictions.csv")).unwrap();
    assert!(
        predictions.starts_with("prompt,target,prediction,prediction_score,prediction_count"),
        "{predictions}"
    );
    assert!(cfg
        .output_dir()
        .join("adapter/regression_head.safetensors")
        .is_file());

    // New rows need no target columns: one value per target.
    let input = write_file(
        dir.path(),
        "new.csv",
        "instruction,input\nItem 99 is a plum,\n",
    );
    let output = dir.path().join("values.csv");
    ferrotune_train::predict::predict(
        &ferrotune_train::predict::PredictRequest {
            run: &ferrotune_home::RunDir::new(cfg.output_dir()),
            home: &ferrotune_home::Home::new(std::env::temp_dir().join("ferrotune-tests-home")),
            input: &input,
            output: &output,
            batch_size: 4,
            device: &ferrotune_model::Device::Cpu,
        },
        &mut |_, _| {},
    )
    .unwrap();
    let text = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "instruction,input,prediction,prediction_score,prediction_count"
    );
    let values: Vec<f64> = lines[1]
        .split(',')
        .skip(3)
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(
        (values[0] - 2.0).abs() < 1.0,
        "a fruit scores about 2: {text}"
    );
}

#[test]
fn bad_labels_are_refused_before_a_run_folder_exists() {
    let dir = tempfile::tempdir().unwrap();
    let rows = "instruction,input,label,score\na,,1,x\nb,,0,2\nc,,1,3\nd,,0,4\ne,,1,5\n";
    let data = write_file(dir.path(), "bad.csv", rows);
    let run = |overrides: &[(&str, &str)]| {
        let cfg = experiment_on(dir.path(), "bad", &data, overrides);
        let home = ferrotune_home::Home::new(std::env::temp_dir().join("ferrotune-tests-home"));
        let stop = std::sync::atomic::AtomicBool::new(false);
        let result = ferrotune_train::run::run(
            ferrotune_train::run::RunRequest {
                config: &cfg,
                home: &home,
                resume: false,
                stop: &stop,
            },
            &mut |_: &Event| {},
        );
        result.err().map(|e| e.to_string()).unwrap_or_default()
    };
    // Settings that contradict each other are refused by the pre-flight checks: no folder is made.
    let e = run(&[
        ("problem_type", "text_causal_classification_modeling"),
        ("training.loss_function", "CrossEntropyLoss"),
    ]);
    assert!(e.contains("needs at least 2 classes"), "{e}");
    let e = run(&[("dataset.answer_column", "[label, score]")]);
    assert!(e.contains("names 2 columns"), "{e}");
    assert!(
        !dir.path().join("bad").exists(),
        "a refused run leaves no folder"
    );
    // Labels are read with the data, before the first step: the run fails naming the row.
    let regression = [
        ("problem_type", "text_causal_regression_modeling"),
        ("dataset.answer_column", "score"),
    ];
    let e = run(&regression);
    assert!(
        e.contains("`x`, not a number") && e.contains("line 2"),
        "{e}"
    );
    let status = std::fs::read_to_string(dir.path().join("bad/status.json")).unwrap();
    assert!(
        status.contains("failed") && status.contains("not a number"),
        "{status}"
    );
    assert!(!dir.path().join("bad/checkpoint").exists());
}

#[test]
fn an_h2o_llm_studio_classification_file_trains_as_it_is() {
    // H2O 1.14's saved classification experiment (crates/config/tests/fixtures/h2o), with only the backbone,
    // the training data and the output folder pointed at local places: int4 backbone, gradient checkpointing,
    // mixed precision, H2O's differential learning rate for `classification_head`, its `drop_last_batch`.
    let dir = tempfile::tempdir().unwrap();
    let data = write_rows(dir.path(), 48);
    let text =
        ferrotune_test_support::h2o_experiment("classification", &data, &dir.path().join("h2o"));
    let cfg = ferrotune_config::Experiment::from_yaml_str(&text, "h2o").unwrap();
    assert!(cfg.training.drop_last_batch);
    let ran = train(&cfg, false, None);
    assert_eq!(ran.summary.status.name(), "finished");
    // H2O's `validation_size: 0.01` leaves one validation row here: its loss is a number, its AUC undefined.
    assert!(
        ran.summary.validation_loss.is_some_and(f64::is_finite),
        "{:?}",
        ran.summary
    );
    // The run's log reports each ignored H2O key once.
    let log = std::fs::read_to_string(cfg.output_dir().join("logs.log")).unwrap();
    assert_eq!(
        log.matches("`environment.use_deepspeed`: is an H2O LLM Studio setting and is ignored")
            .count(),
        1,
        "{log}"
    );
    assert!(Head::load(&cfg.output_dir().join("adapter")).is_ok());
}

#[test]
fn an_h2o_llm_studio_regression_file_trains_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<serde_json::Value> = (0..48)
        .map(|i| serde_json::json!({"instruction": format!("Item {i}"), "label": (i % 5) as f64 / 2.0}))
        .collect();
    let data = write_file(
        dir.path(),
        "values.json",
        serde_json::to_string(&rows).unwrap(),
    );
    let text = ferrotune_test_support::h2o_experiment("regression", &data, &dir.path().join("h2o"));
    let cfg = ferrotune_config::Experiment::from_yaml_str(&text, "h2o").unwrap();
    assert_eq!(cfg.problem_type.as_str(), "text_causal_regression_modeling");
    let ran = train(&cfg, false, None);
    assert_eq!(ran.summary.status.name(), "finished");
    assert_eq!(ran.summary.metric_name, "MSE");
    assert!(
        ran.summary.metric.is_some_and(f64::is_finite),
        "{:?}",
        ran.summary
    );
    assert!(Head::load(&cfg.output_dir().join("adapter")).is_ok());
}
