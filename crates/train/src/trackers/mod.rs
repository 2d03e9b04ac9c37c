//! Experiment trackers (`logging.logger`): every event of the run, as `metrics.jsonl` has it, also sent where
//! users watch experiments. A tracker that fails never fails or stalls the training: the first failure is
//! logged and the tracker is dropped.
//!
//! Adding one: a variant of `ferrotune_config::Logger`, a module here implementing [`Tracker`] (metric names from
//! [`scalars`]), and its arm in [`for_config`].

pub mod mlflow;
pub mod tensorboard;

use ferrotune_config::{Experiment, Logger};
use ferrotune_home::{Event, RunDir, RunStatus};

/// Receives the run's events.
pub trait Tracker {
    /// Its name in log lines.
    fn name(&self) -> &'static str;
    /// Records one event; an error drops the tracker (logged once).
    fn record(&mut self, event: &Event) -> Result<(), String>;
    /// Lines for the run's log since the last call (e.g. that the server stopped answering, or answers again).
    fn notes(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// The run ended: sends what is left and closes the tracker's run; the lines go into the run's log.
    fn finish(&mut self, _end: &RunEnd) -> Vec<String> {
        Vec::new()
    }
}

/// How a run ended, for [`Tracker::finish`].
pub struct RunEnd<'a> {
    pub status: RunStatus,
    /// The status message (e.g. why early stopping ended the run); empty when there is none.
    pub message: &'a str,
}

/// The scalars an event carries as `(name, value, step)`: the one list of metric names every tracker logs.
pub fn scalars(event: &Event) -> Vec<(String, f64, i64)> {
    let mut out = Vec::new();
    let mut push =
        |name: &str, value: f64, step: u64| out.push((name.to_string(), value, step as i64));
    match event {
        Event::Step {
            step,
            loss,
            lr,
            grad_norm,
            tokens_per_second,
            epoch,
            rewards,
            ..
        } => {
            push("train/loss", *loss, *step);
            push("train/learning_rate", *lr, *step);
            push("train/grad_norm", *grad_norm, *step);
            push("train/tokens_per_second", *tokens_per_second, *step);
            push("train/epoch", *epoch, *step);
            if let Some(r) = rewards {
                push("train/rewards_margin", r.margin, *step);
                push("train/rewards_accuracy", r.accuracy, *step);
            }
        }
        Event::Evaluation {
            step,
            validation_loss,
            perplexity,
            metric_name,
            metric,
            ..
        } => {
            push("validation/loss", *validation_loss, *step);
            push("validation/perplexity", *perplexity, *step);
            push(&format!("validation/{metric_name}"), *metric, *step);
        }
        Event::PeakMemory { step, bytes, .. } => push(
            "memory/peak_resident_gib",
            *bytes as f64 / (1u64 << 30) as f64,
            *step,
        ),
        Event::Checkpoint { .. } | Event::Log { .. } => {}
    }
    out
}

/// The trackers `cfg` asks for, started (a tracker that cannot start is reported, not fatal). `resume`: the run
/// continues an earlier one in the same folder (an MLflow run is continued too).
pub fn for_config(
    cfg: &Experiment,
    run: &RunDir,
    resume: bool,
) -> (Vec<Box<dyn Tracker>>, Vec<String>) {
    let mut trackers: Vec<Box<dyn Tracker>> = Vec::new();
    let mut notes = Vec::new();
    match cfg.logging.logger {
        Logger::None => {}
        Logger::TensorBoard => match TensorBoard::start(cfg, run) {
            Ok(t) => {
                notes.push(format!(
                    "TensorBoard: writing {} (view with `tensorboard --logdir {}`)",
                    t.writer.path().display(),
                    run.tensorboard().display()
                ));
                trackers.push(Box::new(t));
            }
            Err(e) => notes.push(format!(
                "warning: TensorBoard cannot write into {}: {e}; training goes on without it",
                run.tensorboard().display()
            )),
        },
        Logger::MLflow => match mlflow::Mlflow::start(cfg, run, resume) {
            Ok(t) => {
                notes.push(t.describe());
                trackers.push(Box::new(t));
            }
            Err(e) => notes.push(format!("warning: MLflow: {e}; training goes on without it")),
        },
    }
    (trackers, notes)
}

/// Scalars per step and evaluation, the config as text, into the run's `tensorboard/`.
struct TensorBoard {
    writer: tensorboard::EventWriter,
}

impl TensorBoard {
    fn start(cfg: &Experiment, run: &RunDir) -> std::io::Result<TensorBoard> {
        let mut writer = tensorboard::EventWriter::create(&run.tensorboard())?;
        let yaml = cfg.to_yaml();
        writer.text("config", &format!("```yaml\n{yaml}\n```"), 0)?;
        Ok(TensorBoard { writer })
    }
}

impl Tracker for TensorBoard {
    fn name(&self) -> &'static str {
        "TensorBoard"
    }

    fn record(&mut self, event: &Event) -> Result<(), String> {
        let w = &mut self.writer;
        scalars(event)
            .into_iter()
            .try_for_each(|(name, value, step)| w.scalar(&name, value as f32, step))
            .map_err(|e| format!("cannot write {}: {e}", w.path().display()))
    }
}
