//! A run's output folder, as a type: every file a training run leaves behind is named here once ([`RunDir`]),
//! with the formats of the two that other processes read while it runs — `status.json` ([`StatusFile`],
//! [`RunStatus`]) and `metrics.jsonl` (one [`Event`] per line).
//!
//! ```text
//! OUTPUT_DIR/
//!   cfg.yaml                    the resolved config (generated name and drawn seed filled in)
//!   status.json                 {"status": running|finished|failed|stopped, "message": …, "pid": …}
//!   logs.log                    human-readable log
//!   metrics.jsonl               one event per line (train steps, evaluations, checkpoints, peak memory)
//!   stderr.log                  what the training process printed before its log opened (runner-started runs)
//!   first_batch.json            the first training batch, decoded, with masked labels marked
//!   validation_predictions.csv  prompt, target, prediction, per-sample metric (final evaluation)
//!   adapter/                    the LoRA adapter in PEFT's format (swapped in whole: present means complete)
//!   adapter-step<N>/            adapters kept at each evaluation (`training.save_checkpoint: each_evaluation_epoch`)
//!   checkpoint/                 resume state: adapter, optimizer moments, position (`checkpoint.old` mid-swap)
//!   tensorboard/                TensorBoard event files (`logging.logger: TensorBoard`)
//!   exports/<kind>/             the studio's exports (`hf`, `gguf-q8_0`, `gguf-adapter`, …), each swapped in whole
//! ```
//! Train writes these; store and the studio read them through this type, never by literal names.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where an experiment is in its life: queued → running → finished | failed | stopped. A run's `status.json`
/// says one of the last four; `queued` exists only in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Finished,
    Failed,
    Stopped,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Finished,
        RunStatus::Failed,
        RunStatus::Stopped,
    ];

    /// The name stored in the registry and in `status.json`.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Stopped => "stopped",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Finished, failed or stopped: no process works on it and none will unless asked.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Stopped
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What `status.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFile {
    pub status: RunStatus,
    /// Why it failed or stopped; empty otherwise.
    #[serde(default)]
    pub message: String,
    /// The training process that wrote it.
    #[serde(default)]
    pub pid: Option<u32>,
}

/// One event of a run: the stream that the terminal progress bar, `metrics.jsonl`, the registry and the
/// studio's live charts all consume. Each line of `metrics.jsonl` is one, as JSON tagged by `event`; fields
/// added after the first release default when an older file lacks them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An optimizer step finished.
    Step {
        step: u64,
        total_steps: u64,
        /// Fraction of epochs done (the x axis when `logging.log_step_size` is `relative`).
        #[serde(default)]
        epoch: f64,
        /// Training samples seen (rows when packing; the x axis when `logging.log_step_size` is `absolute`).
        #[serde(default)]
        samples_seen: u64,
        #[serde(deserialize_with = "number_or_nan")]
        loss: f64,
        lr: f64,
        #[serde(deserialize_with = "number_or_nan")]
        grad_norm: f64,
        /// Padded batch tokens of the step per second of it.
        #[serde(default)]
        tokens_per_second: f64,
        /// Wall time of the step (its micro-batches, backward passes and the optimizer update).
        #[serde(default)]
        step_seconds: f64,
        /// Preference tuning: the step's rewards.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rewards: Option<Rewards>,
    },
    /// An evaluation finished.
    Evaluation {
        step: u64,
        #[serde(default)]
        epoch: f64,
        #[serde(deserialize_with = "number_or_nan")]
        validation_loss: f64,
        #[serde(deserialize_with = "number_or_nan")]
        perplexity: f64,
        metric_name: String,
        #[serde(deserialize_with = "number_or_nan")]
        metric: f64,
        /// Preference tuning: the validation pairs' rewards.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rewards: Option<Rewards>,
    },
    /// A checkpoint was written.
    Checkpoint { step: u64, path: String },
    /// The process's peak resident memory so far (before an evaluation, and at the end of the run).
    PeakMemory {
        step: u64,
        bytes: u64,
        /// The run's end (the whole run's peak) rather than a point on the way.
        end_of_run: bool,
    },
    /// A free-form log line.
    Log { message: String },
}

/// The implicit rewards of preference tuning (means over the pairs): β times the policy's log-probability of
/// an answer over the reference's (or over nothing, for the losses without a reference model).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Rewards {
    #[serde(deserialize_with = "number_or_nan")]
    pub chosen: f64,
    #[serde(deserialize_with = "number_or_nan")]
    pub rejected: f64,
    /// Share of pairs whose chosen reward is above the rejected one.
    #[serde(deserialize_with = "number_or_nan")]
    pub accuracy: f64,
    /// Mean of chosen minus rejected reward.
    #[serde(deserialize_with = "number_or_nan")]
    pub margin: f64,
}

impl Rewards {
    /// The mean of `parts` weighted by their pair counts; `None` when there are none.
    pub fn mean(parts: &[(Rewards, usize)]) -> Option<Rewards> {
        let n: usize = parts.iter().map(|(_, k)| k).sum();
        if n == 0 {
            return None;
        }
        let avg = |f: fn(&Rewards) -> f64| {
            parts.iter().map(|(r, k)| f(r) * *k as f64).sum::<f64>() / n as f64
        };
        Some(Rewards {
            chosen: avg(|r| r.chosen),
            rejected: avg(|r| r.rejected),
            accuracy: avg(|r| r.accuracy),
            margin: avg(|r| r.margin),
        })
    }
}

/// JSON has no NaN: serde_json writes a non-finite number as `null`, read back here as NaN (a diverged value).
fn number_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Event {
    /// The event of one `metrics.jsonl` line; `None` for a line that is not one (half written, or foreign).
    pub fn from_line(line: &str) -> Option<Event> {
        serde_json::from_str(line).ok()
    }

    /// The `metrics.jsonl` line of this event.
    pub fn to_line(&self) -> String {
        // An enum of numbers and strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The output folder of one run and the paths of its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `cfg.yaml`: the resolved settings of the run.
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// `status.json`: the outcome ([`StatusFile`]).
    pub fn status(&self) -> PathBuf {
        self.root.join("status.json")
    }

    /// `metrics.jsonl`: one [`Event`] per line.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `logs.log`: the human-readable log.
    pub fn log(&self) -> PathBuf {
        self.root.join("logs.log")
    }

    /// `stderr.log`: what a runner-started training process printed on stderr.
    pub fn stderr(&self) -> PathBuf {
        self.root.join("stderr.log")
    }

    /// `first_batch.json`: the first training batch, decoded.
    pub fn first_batch(&self) -> PathBuf {
        self.root.join("first_batch.json")
    }

    /// `validation_predictions.csv`: the final evaluation's predictions.
    pub fn predictions(&self) -> PathBuf {
        self.root.join("validation_predictions.csv")
    }

    /// `predict/`: what `ferrotune predict` wrote from the studio, one `<input>.predictions.csv` per input file.
    pub fn predict_dir(&self) -> PathBuf {
        self.root.join("predict")
    }

    /// `adapter/`: the trained LoRA adapter (PEFT format).
    pub fn adapter(&self) -> PathBuf {
        self.root.join("adapter")
    }

    /// Whether the run has saved its adapter (it is swapped in whole, so a present folder is complete).
    pub fn has_adapter(&self) -> bool {
        self.adapter().is_dir()
    }

    /// `adapter-step<N>/`: the adapter kept at the evaluation after optimizer step `step`.
    pub fn adapter_at_step(&self, step: u64) -> PathBuf {
        self.root.join(format!("adapter-step{step}"))
    }

    /// `model/`: the fully fine-tuned model (a Hugging Face folder), when `training.lora` is off.
    pub fn model(&self) -> PathBuf {
        self.root.join("model")
    }

    /// Whether the run has saved a fully fine-tuned model (swapped in whole, like the adapter).
    pub fn has_model(&self) -> bool {
        self.model().join("config.json").is_file()
    }

    /// `model-step<N>/`: the fully fine-tuned model kept at the evaluation after optimizer step `step`.
    pub fn model_at_step(&self, step: u64) -> PathBuf {
        self.root.join(format!("model-step{step}"))
    }

    /// `tensorboard/`: TensorBoard event files (`logging.logger: TensorBoard`).
    pub fn tensorboard(&self) -> PathBuf {
        self.root.join("tensorboard")
    }

    /// `mlflow_run.json`: the MLflow run this run logs into (`logging.logger: MLflow`), continued on resume.
    pub fn mlflow_run(&self) -> PathBuf {
        self.root.join("mlflow_run.json")
    }

    /// `exports/`: the studio's exports of the trained model, one folder per kind.
    pub fn exports(&self) -> PathBuf {
        self.root.join("exports")
    }

    /// `exports/<kind>/`: one export (e.g. `hf`, `gguf-q4_k_m`).
    pub fn export_dir(&self, kind: &str) -> PathBuf {
        self.exports().join(kind)
    }

    /// `checkpoint/`: the resume state.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint")
    }

    /// `checkpoint.old/`: the previous checkpoint while a new one is swapped in.
    pub fn checkpoint_backup(&self) -> PathBuf {
        crate::atomic::backup_of(&self.checkpoint())
    }

    /// Whether a checkpoint (or the previous one, mid-swap) is there to resume from.
    pub fn has_checkpoint(&self) -> bool {
        [self.checkpoint(), self.checkpoint_backup()]
            .iter()
            .any(|d| d.is_dir())
    }

    /// What `status.json` says, when it is there and readable.
    pub fn read_status(&self) -> Option<StatusFile> {
        let text = std::fs::read_to_string(self.status()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes `status.json` atomically, with this process as its writer.
    pub fn write_status(&self, status: RunStatus, message: &str) -> std::io::Result<()> {
        let file = StatusFile {
            status,
            message: message.to_string(),
            pid: Some(std::process::id()),
        };
        let json = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        crate::atomic::write(&self.status(), &json)
    }

    /// Every event of `metrics.jsonl` so far (lines that do not parse — a half-written last one — skipped).
    pub fn read_events(&self) -> Vec<Event> {
        std::fs::read_to_string(self.metrics())
            .unwrap_or_default()
            .lines()
            .filter_map(Event::from_line)
            .collect()
    }

    /// What an interrupted run left in the folder: the temporary siblings of files and folders being written
    /// ([`crate::atomic::temp_sibling`] names) and the `checkpoint.tmp-<pid>` staging folders of older releases.
    pub fn leftovers(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                crate::atomic::is_temp_name(&name) || name.starts_with("checkpoint.tmp-")
            })
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    }

    /// Removes [`RunDir::leftovers`]; what was removed. Only for a folder no process is writing.
    pub fn remove_leftovers(&self) -> std::io::Result<Vec<PathBuf>> {
        let found = self.leftovers();
        for path in &found {
            if path.is_dir() {
                std::fs::remove_dir_all(path)?;
            } else {
                std::fs::remove_file(path)?;
            }
        }
        Ok(found)
    }

    /// Whether `name` (an entry of the folder) is one of the run's outputs, cleared by a restart: everything
    /// but `cfg.yaml`.
    pub fn is_output(name: &std::ffi::OsStr) -> bool {
        name != CONFIG_FILE
    }
}

/// The name of a run's settings file.
pub const CONFIG_FILE: &str = "cfg.yaml";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_lines() {
        let events = [
            Event::Step {
                step: 3,
                total_steps: 9,
                epoch: 0.5,
                samples_seen: 12,
                loss: 1.25,
                lr: 1e-4,
                grad_norm: 0.5,
                tokens_per_second: 100.0,
                step_seconds: 0.25,
                rewards: Some(Rewards {
                    chosen: 0.5,
                    rejected: -0.25,
                    accuracy: 1.0,
                    margin: 0.75,
                }),
            },
            Event::PeakMemory {
                step: 9,
                bytes: 1 << 30,
                end_of_run: true,
            },
            Event::Log {
                message: "hi".into(),
            },
        ];
        for e in events {
            assert_eq!(Event::from_line(&e.to_line()), Some(e));
        }
        assert_eq!(Event::from_line("{\"event\":\"step\",\"ste"), None);
        let diverged = r#"{"event":"evaluation","step":2,"epoch":0.2,"validation_loss":null,"perplexity":null,"metric_name":"Perplexity","metric":null}"#;
        match Event::from_line(diverged) {
            Some(Event::Evaluation {
                step: 2,
                validation_loss,
                ..
            }) => assert!(validation_loss.is_nan()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn status_is_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(run.read_status(), None);
        run.write_status(RunStatus::Failed, "boom").unwrap();
        let s = run.read_status().unwrap();
        assert_eq!((s.status, s.message.as_str()), (RunStatus::Failed, "boom"));
        assert_eq!(s.pid, Some(std::process::id()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn leftovers_of_a_killed_run_are_found_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        std::fs::create_dir(run.checkpoint()).unwrap();
        std::fs::create_dir(crate::atomic::temp_sibling(&run.checkpoint())).unwrap();
        std::fs::create_dir(dir.path().join("checkpoint.tmp-4242")).unwrap();
        std::fs::write(crate::atomic::temp_sibling(&run.status()), b"{").unwrap();
        assert_eq!(run.leftovers().len(), 3);
        assert_eq!(run.remove_leftovers().unwrap().len(), 3);
        assert!(run.leftovers().is_empty() && run.checkpoint().is_dir());
    }

    #[test]
    fn statuses_parse_their_names() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.name()), Some(s));
        }
        assert!(RunStatus::Stopped.is_done() && !RunStatus::Running.is_done());
    }
}
