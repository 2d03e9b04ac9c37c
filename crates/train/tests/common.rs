//! Tiny experiments run in-process: the arithmetic data and experiment file of `ferrotune-test-support`, varied by
//! `--key value` overrides, trained by [`ferrotune_train::run::run`] with a listener that records every event
//! and can raise the stop flag.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use ferrotune_config::{apply_overrides, Experiment};
use ferrotune_test_support::{experiment_yaml, write_arithmetic_data, write_file};
use ferrotune_train::events::Event;
use ferrotune_train::run::{run, RunRequest, RunSummary};

/// Rows of the arithmetic data: 21 train and 3 validation samples, so 6 steps per epoch in batches of 4.
pub const ROWS: usize = 24;

/// The experiment `name` (in `dir/name`) on `ROWS` arithmetic rows, with `overrides` applied.
pub fn experiment(dir: &Path, name: &str, overrides: &[(&str, &str)]) -> Experiment {
    let data = dir.join("data.json");
    if !data.is_file() {
        write_arithmetic_data(dir, "data.json", ROWS);
    }
    experiment_on(dir, name, &data, overrides)
}

/// The experiment `name` (in `dir/name`) on the data file `train`, with `overrides` applied.
pub fn experiment_on(
    dir: &Path,
    name: &str,
    train: &Path,
    overrides: &[(&str, &str)],
) -> Experiment {
    let mut cfg = Experiment::from_yaml_str(&experiment_yaml(name, dir, train), name).unwrap();
    let overrides: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    apply_overrides(&mut cfg, &overrides).unwrap();
    cfg
}

/// Conversations of three turns (`id`, `parent_id` columns; roots have an empty parent), `ROWS` rows in all:
/// every row is a sample whose history is its earlier turns.
pub fn write_conversations(dir: &Path) -> PathBuf {
    let rows: Vec<serde_json::Value> = (0..ROWS / 3)
        .flat_map(|c| {
            [
                (format!("Add {c} and {c}."), 2 * c),
                ("Double it.".to_string(), 4 * c),
                ("Add one.".to_string(), 4 * c + 1),
            ]
            .into_iter()
            .enumerate()
            .map(move |(t, (prompt, answer))| {
                let parent = if t == 0 { String::new() } else { format!("c{c}t{}", t - 1) };
                serde_json::json!({"id": format!("c{c}t{t}"), "parent_id": parent, "instruction": prompt, "input": "", "output": answer.to_string()})
            })
        })
        .collect();
    write_file(
        dir,
        "conversations.json",
        serde_json::to_string(&rows).unwrap(),
    )
}

/// Settings that read [`write_conversations`]' chains.
pub const CHAINED: &[(&str, &str)] = &[
    ("dataset.parent_id_column", "parent_id"),
    ("dataset.id_column", "id"),
];

/// What a run returned and every event its listener received.
pub struct Ran {
    pub summary: RunSummary,
    pub events: Vec<Event>,
}

impl Ran {
    /// The losses of the step events, in order.
    pub fn losses(&self) -> Vec<f64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Step { loss, .. } => Some(*loss),
                _ => None,
            })
            .collect()
    }

    /// The validation losses of the evaluation events, in order.
    pub fn validation_losses(&self) -> Vec<f64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Evaluation {
                    validation_loss, ..
                } => Some(*validation_loss),
                _ => None,
            })
            .collect()
    }

    /// The log messages, in order.
    pub fn logs(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Log { message } => Some(message.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// The run finished, and every training and validation loss is a positive finite number.
pub fn assert_trained(ran: &Ran, what: &str) {
    assert_eq!(ran.summary.status.name(), "finished", "{what}");
    let losses = ran.losses();
    assert_eq!(losses.len() as u64, ran.summary.steps, "{what}");
    assert!(
        !losses.is_empty() && losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{what}: training losses {losses:?}"
    );
    let validation = ran.validation_losses();
    assert!(
        !validation.is_empty() && validation.iter().all(|l| l.is_finite() && *l > 0.0),
        "{what}: validation losses {validation:?}"
    );
}

/// Runs (or, with `resume`, continues) `cfg`; with `stop_after`, the listener raises the stop flag when that
/// optimizer step is reported. A failed run fails the test with its error.
pub fn train(cfg: &Experiment, resume: bool, stop_after: Option<u64>) -> Ran {
    let stop = AtomicBool::new(false);
    let mut events = Vec::new();
    let mut listener = |event: &Event| {
        if let (Event::Step { step, .. }, Some(last)) = (event, stop_after) {
            if *step == last {
                stop.store(true, Ordering::Relaxed);
            }
        }
        events.push(event.clone());
    };
    // The config names the fixture backbone (a folder: nothing is imported into the home).
    let home = ferrotune_home::Home::new(std::env::temp_dir().join("ferrotune-tests-home"));
    let request = RunRequest {
        config: cfg,
        home: &home,
        resume,
        stop: &stop,
    };
    let summary = run(request, &mut listener)
        .unwrap_or_else(|e| panic!("experiment `{}` failed: {e}", cfg.experiment_name));
    Ran { summary, events }
}

/// The overrides of [`plain`]; a run with these and more overrides differs from it only in those.
pub const PLAIN: &[(&str, &str)] = &[("training.evaluation_epochs", "0.5")];

/// The plain tiny experiment (one epoch, evaluated every half epoch), trained once per test binary: the
/// baseline that the augmented and quantized runs are compared with. Returns its output folder and the run.
pub fn plain() -> &'static (PathBuf, Ran) {
    static RUN: OnceLock<(PathBuf, Ran)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train-baseline");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = experiment(&dir, "plain", PLAIN);
        let ran = train(&cfg, false, None);
        (cfg.output_dir(), ran)
    })
}
