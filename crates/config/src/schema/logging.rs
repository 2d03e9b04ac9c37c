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
        /// An MLflow tracking server (`logging.mlflow_tracking_uri`): params, metrics per step, `cfg.yaml` and the
        /// adapter as artifacts.
        MLflow = "MLflow",
    }
}

/// The environment variable MLflow's own clients read for the tracking server, used when
/// `logging.mlflow_tracking_uri` is empty.
pub const MLFLOW_TRACKING_URI_ENV: &str = "MLFLOW_TRACKING_URI";

settings_struct! {
    /// Logging: how training metrics are recorded.
    pub struct Logging in "logging." {
        /// X axis of logged metrics: `absolute` counts training samples seen, `relative` the epochs (share of the data) seen.
        log_step_size: LogStepSize = LogStepSize::Absolute => meta();
        /// Experiment tracker that also receives every step and evaluation metric, the learning rate and the config.
        logger: Logger = Logger::None => meta();
        /// MLflow tracking server, e.g. `http://127.0.0.1:5000` (empty: the `MLFLOW_TRACKING_URI` environment variable).
        mlflow_tracking_uri: String = String::new() => meta().label("MLflow tracking URI").when("logging.logger", "MLflow");
        /// MLflow experiment the run is logged into (created when missing); the run is named after `experiment_name`.
        mlflow_experiment_name: String = "Ferrotune".to_string() => meta().label("MLflow experiment name").when("logging.logger", "MLflow");
    }
}

impl Logging {
    /// The MLflow tracking server: `mlflow_tracking_uri`, else [`MLFLOW_TRACKING_URI_ENV`]; `None` when neither is
    /// set. A trailing `/` is dropped.
    pub fn mlflow_uri(&self) -> Option<String> {
        let from_env = || std::env::var(MLFLOW_TRACKING_URI_ENV).ok();
        Some(self.mlflow_tracking_uri.trim().to_string())
            .filter(|u| !u.is_empty())
            .or_else(from_env)
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
    }
}
