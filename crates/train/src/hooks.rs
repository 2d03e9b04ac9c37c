//! What a run does around the loop: its log and metrics files ([`RunFiles`]: every event goes to
//! `metrics.jsonl`, a human line to `logs.log`, and the caller's listener), and the loop's hooks ([`RunHooks`]:
//! evaluations with the best-metric bookkeeping, adapters kept per `training.save_checkpoint`, checkpoints).

use std::io::Write;

use ferrotune_config::SaveCheckpoint;
use ferrotune_home::RunDir;
use ferrotune_model::Llama;

use crate::checkpoint::{self, CheckpointState};
use crate::error::{Error, Result};
use crate::events::{Event, Listener};
use crate::memory;
use crate::objective::Objective;
use crate::optim::Optimizer;
use crate::trained::Trained;
use crate::trainer::{Hooks, Position};

/// Appends to `logs.log` and `metrics.jsonl`, and forwards every event to the caller's listener.
pub(crate) struct RunFiles<'a> {
    pub(crate) run: RunDir,
    log: std::fs::File,
    metrics: std::fs::File,
    listener: &'a mut dyn Listener,
    /// `logging.logger`'s trackers (one that fails is dropped, its failure logged).
    trackers: Vec<Box<dyn crate::trackers::Tracker>>,
}

impl<'a> RunFiles<'a> {
    /// Opens (appending) the log and metrics files of `run`, creating its folder.
    pub(crate) fn open(run: RunDir, listener: &'a mut dyn Listener) -> Result<Self> {
        let dir = run.root().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir, source })?;
        Ok(RunFiles {
            log: open_append(&run.log())?,
            metrics: open_append(&run.metrics())?,
            run,
            listener,
            trackers: Vec::new(),
        })
    }

    /// Starts sending the events to `trackers` too.
    pub(crate) fn add_trackers(&mut self, trackers: Vec<Box<dyn crate::trackers::Tracker>>) {
        self.trackers.extend(trackers);
    }

    pub(crate) fn emit(&mut self, event: Event) {
        self.write(&event);
        let mut lines = Vec::new();
        self.trackers.retain_mut(|t| {
            let kept = match t.record(&event) {
                Ok(()) => true,
                Err(e) => {
                    lines.push(format!(
                        "warning: {} stopped receiving metrics: {e}; training goes on",
                        t.name()
                    ));
                    false
                }
            };
            lines.splice(0..0, t.notes());
            kept
        });
        for message in lines {
            self.write(&Event::Log { message });
        }
    }

    /// Tells the trackers how the run ended (they send what is left) and logs what they say.
    pub(crate) fn finish_trackers(&mut self, end: &crate::trackers::RunEnd) {
        for mut tracker in std::mem::take(&mut self.trackers) {
            for message in tracker.finish(end) {
                self.write(&Event::Log { message });
            }
        }
    }

    /// One event into `metrics.jsonl`, its line into `logs.log`, and to the listener.
    fn write(&mut self, event: &Event) {
        let _ = writeln!(self.metrics, "{}", event.to_line());
        let text = match event {
            Event::Log { message } => message.clone(),
            Event::PeakMemory {
                bytes, end_of_run, ..
            } => format!(
                "peak resident memory {}: {}",
                if *end_of_run {
                    "of the run"
                } else {
                    "before this evaluation"
                },
                memory::gib(*bytes)
            ),
            other => other.to_line(),
        };
        let _ = writeln!(self.log, "{text}");
        self.listener.on_event(event);
    }

    pub(crate) fn log(&mut self, message: impl Into<String>) {
        self.emit(Event::Log {
            message: message.into(),
        });
    }
}

fn open_append(path: &std::path::Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
}

/// The loop's hooks: evaluation through the objective, adapters and checkpoints into the run folder.
pub(crate) struct RunHooks<'a, 'b> {
    pub(crate) files: &'a mut RunFiles<'b>,
    pub(crate) objective: &'a dyn Objective,
    pub(crate) total_micro_steps: u64,
    pub(crate) trained: Trained,
    pub(crate) save: SaveCheckpoint,
    pub(crate) seed: u64,
    /// Best validation metric so far and the step it was reached at.
    pub(crate) best: Option<(f64, u64)>,
    /// The last evaluation's validation loss and metric.
    pub(crate) last: Option<(f64, f64)>,
    /// Early stopping: evaluations without improvement allowed (0: off), and the improvement that counts.
    pub(crate) patience: u32,
    pub(crate) threshold: f64,
    /// Evaluations since the best one that did not improve on it.
    pub(crate) since_best: u32,
}

impl RunHooks<'_, '_> {
    /// Saves the trained weights into `dir`, with the objective's own weights (a head) beside them.
    pub(crate) fn save_weights(&self, model: &Llama, dir: &std::path::Path) -> Result<()> {
        self.trained.save(model, dir)?;
        self.objective.save_own(dir)
    }
}

impl Hooks for RunHooks<'_, '_> {
    fn evaluate(&mut self, model: &Llama, pos: Position, epoch: f64) -> Result<()> {
        let last_eval = pos.micro_step == self.total_micro_steps;
        if let Some(bytes) = memory::peak_resident().filter(|_| pos.micro_step > 0) {
            self.files.emit(Event::PeakMemory {
                step: pos.optimizer_step,
                bytes,
                end_of_run: false,
            });
        }
        let metric = self.objective.metric();
        // Answers are generated for BLEU and the judge at every evaluation, and for the predictions file at the
        // last one.
        let generate = metric.needs_answers() || last_eval;
        let ev = self.objective.evaluate(model, generate)?;
        if let Some(note) = &ev.note {
            self.files.log(note.clone());
        }
        if last_eval {
            self.objective
                .write_predictions(&self.files.run.predictions(), &ev)?;
        }
        self.last = Some((ev.loss, ev.metric));
        self.files.emit(Event::Evaluation {
            step: pos.optimizer_step,
            epoch,
            validation_loss: ev.loss,
            perplexity: ev.perplexity,
            metric_name: metric.name().into(),
            metric: ev.metric,
            rewards: ev.rewards,
        });
        // Nothing is saved from weights that evaluate to NaN: the last good checkpoint stays the one to resume.
        if !ev.loss.is_finite() {
            return Err(Error::NonFiniteValidation {
                step: pos.optimizer_step,
                value: ev.loss,
            });
        }
        if pos.micro_step > 0 {
            let improved = self.best.is_none_or(|(b, _)| {
                metric.better(ev.metric, b) && (ev.metric - b).abs() > self.threshold
            });
            if improved {
                self.best = Some((ev.metric, pos.optimizer_step));
                self.since_best = 0;
                // Early stopping keeps the best evaluation's weights as the result, whatever `save_checkpoint` says.
                if self.save == SaveCheckpoint::Best || self.patience > 0 {
                    self.save_weights(model, &self.trained.folder(&self.files.run))?;
                }
            } else {
                self.since_best += 1;
            }
        }
        if self.save == SaveCheckpoint::EachEvaluationEpoch && pos.micro_step > 0 {
            let dir = self
                .trained
                .folder_at_step(&self.files.run, pos.optimizer_step);
            self.save_weights(model, &dir)?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, model: &Llama, optimizer: &Optimizer, pos: Position) -> Result<()> {
        if !weights_are_finite(optimizer)? {
            return Err(Error::NonFiniteWeights {
                step: pos.optimizer_step,
            });
        }
        let state = CheckpointState {
            position: pos,
            optimizer_steps: optimizer.steps(),
            seed: self.seed,
            best_metric: self.best,
            evaluations_since_best: self.since_best,
        };
        let path = checkpoint::save(
            &self.files.run,
            self.trained.checkpoint_folder(),
            &|dir| self.save_weights(model, dir),
            optimizer,
            &state,
        )?;
        self.files.emit(Event::Checkpoint {
            step: pos.optimizer_step,
            path: path.display().to_string(),
        });
        Ok(())
    }

    fn event(&mut self, event: &Event) {
        self.files.emit(event.clone());
    }

    fn early_stop(&self) -> bool {
        self.patience > 0 && self.since_best >= self.patience
    }
}

impl RunHooks<'_, '_> {
    /// Why early stopping ended the run, for its status and log.
    pub(crate) fn early_stop_reason(&self, step: u64) -> String {
        let metric = self.objective.metric().name();
        let best = match self.best {
            Some((value, at)) => format!(
                "; the result is the best evaluation's weights ({metric} {value:.4} at step {at})"
            ),
            None => String::new(),
        };
        format!(
            "stopped early at step {step}: {metric} did not improve by more than {} for {} evaluations{best}",
            self.threshold, self.patience
        )
    }
}

/// Whether every trainable weight is finite and of a sane size: their sum of squares is finite in f32 (weights
/// near 1e19 overflow it, and are as useless as infinite ones).
fn weights_are_finite(optimizer: &Optimizer) -> Result<bool> {
    for p in optimizer.params() {
        let sum = p
            .var
            .as_tensor()
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
        if !sum.is_finite() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tracker whose service is down from its second event on.
    struct Flaky(u32);

    impl crate::trackers::Tracker for Flaky {
        fn name(&self) -> &'static str {
            "Flaky"
        }
        fn record(&mut self, _: &Event) -> std::result::Result<(), String> {
            self.0 += 1;
            if self.0 > 1 {
                Err("connection refused".into())
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn a_failing_tracker_is_dropped_and_reported_once_and_the_run_files_go_on() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path().join("run"));
        let mut seen = 0;
        let mut listener = |_: &Event| seen += 1;
        let mut files = RunFiles::open(run.clone(), &mut listener).unwrap();
        files.add_trackers(vec![Box::new(Flaky(0))]);
        for i in 0..5 {
            files.log(format!("line {i}"));
        }
        drop(files);
        assert_eq!(seen, 6, "every event and the warning reach the listener");
        let log = std::fs::read_to_string(run.log()).unwrap();
        assert_eq!(
            log.matches(
                "warning: Flaky stopped receiving metrics: connection refused; training goes on"
            )
            .count(),
            1,
            "{log}"
        );
        assert!(log.contains("line 4"));
        let metrics = std::fs::read_to_string(run.metrics()).unwrap();
        assert_eq!(
            metrics.lines().count(),
            6,
            "five events and the one warning: {metrics}"
        );
    }
}
