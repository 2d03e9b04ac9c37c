//! Experiment trackers (`logging.logger`): every event of the run, as `metrics.jsonl` has it, also sent where
//! users watch experiments. A tracker that fails never fails or stalls the training: the first failure is
//! logged and the tracker is dropped.
//!
//! Adding one: a variant of `ferrotune_config::Logger`, a module here implementing [`Tracker`], and its arm in
//! [`for_config`].

pub mod tensorboard;

use ferrotune_config::{Experiment, Logger};
use ferrotune_home::{Event, RunDir};

/// Receives the run's events.
pub trait Tracker {
    /// Its name in log lines.
    fn name(&self) -> &'static str;
    /// Records one event; an error drops the tracker (logged once).
    fn record(&mut self, event: &Event) -> Result<(), String>;
}

/// The trackers `cfg` asks for, started (a tracker that cannot start is reported, not fatal).
pub fn for_config(cfg: &Experiment, run: &RunDir) -> (Vec<Box<dyn Tracker>>, Vec<String>) {
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
        let result = match event {
            Event::Step {
                step,
                loss,
                lr,
                grad_norm,
                tokens_per_second,
                epoch,
                rewards,
                ..
            } => (|| {
                let s = *step as i64;
                w.scalar("train/loss", *loss as f32, s)?;
                w.scalar("train/learning_rate", *lr as f32, s)?;
                w.scalar("train/grad_norm", *grad_norm as f32, s)?;
                w.scalar("train/tokens_per_second", *tokens_per_second as f32, s)?;
                w.scalar("train/epoch", *epoch as f32, s)?;
                if let Some(r) = rewards {
                    w.scalar("train/rewards_margin", r.margin as f32, s)?;
                    w.scalar("train/rewards_accuracy", r.accuracy as f32, s)?;
                }
                Ok(())
            })(),
            Event::Evaluation {
                step,
                validation_loss,
                perplexity,
                metric_name,
                metric,
                ..
            } => (|| {
                let s = *step as i64;
                w.scalar("validation/loss", *validation_loss as f32, s)?;
                w.scalar("validation/perplexity", *perplexity as f32, s)?;
                w.scalar(&format!("validation/{metric_name}"), *metric as f32, s)
            })(),
            Event::PeakMemory { step, bytes, .. } => w.scalar(
                "memory/peak_resident_gib",
                (*bytes as f64 / (1u64 << 30) as f64) as f32,
                *step as i64,
            ),
            Event::Checkpoint { .. } | Event::Log { .. } => Ok(()),
        };
        result.map_err(|e: std::io::Error| format!("cannot write {}: {e}", w.path().display()))
    }
}
