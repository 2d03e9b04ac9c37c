//! `logging`: how training progress is recorded.

use crate::macros::settings_struct;
use crate::meta::meta;
use crate::value::choice_enum;

choice_enum! {
    /// The x axis of logged metrics.
    pub enum LogStepSize {
        /// Number of training samples seen.
        Absolute = "absolute",
        /// Share of the training data seen (epochs).
        Relative = "relative",
    }
}

choice_enum! {
    /// Where the run's metrics are also sent.
    pub enum Logger {
        /// Only the run folder's `metrics.jsonl` and `logs.log` (the studio's charts read them).
        None = "None",
        /// TensorBoard event files in the run folder's `tensorboard/` (`tensorboard --logdir RUN/tensorboard`).
        TensorBoard = "TensorBoard",
    }
}

settings_struct! {
    /// Logging: how training metrics are recorded.
    pub struct Logging in "logging." {
        /// X axis of logged metrics: `absolute` counts training samples seen, `relative` the epochs (share of the data) seen.
        log_step_size: LogStepSize = LogStepSize::Absolute => meta();
        /// Experiment tracker that also receives every step and evaluation metric, the learning rate and the config.
        logger: Logger = Logger::None => meta();
    }
}
