//! What a training run reports while it runs: one stream of events that the terminal progress bar, the metrics
//! file, the registry and the GUI's live charts all consume.

use serde::Serialize;

/// One event of a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An optimizer step finished.
    Step {
        step: u64,
        total_steps: u64,
        /// Fraction of epochs done (the x axis when `logging.log_step_size` is `relative`).
        epoch: f64,
        /// Training samples seen (rows when packing; the x axis when `logging.log_step_size` is `absolute`).
        samples_seen: u64,
        loss: f64,
        lr: f64,
        grad_norm: f64,
        /// Padded batch tokens of the step per second of it.
        tokens_per_second: f64,
        /// Wall time of the step (its micro-batches, backward passes and the optimizer update).
        step_seconds: f64,
    },
    /// An evaluation finished.
    Evaluation {
        step: u64,
        epoch: f64,
        validation_loss: f64,
        perplexity: f64,
        metric_name: String,
        metric: f64,
    },
    /// A checkpoint was written.
    Checkpoint { step: u64, path: String },
    /// A free-form log line.
    Log { message: String },
}

/// Receives events (a closure works).
pub trait Listener {
    fn on_event(&mut self, event: &Event);
}

impl<F: FnMut(&Event)> Listener for F {
    fn on_event(&mut self, event: &Event) {
        self(event)
    }
}
