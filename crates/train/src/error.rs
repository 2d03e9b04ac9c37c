//! The train crate's error type.

use std::path::PathBuf;

/// Errors of the training loop. Messages start lowercase, name the thing and end with a `help:` line when there
/// is a fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid setting: {0}")]
    Setting(String),

    #[error("the loss became {value} at step {step}\nhelp: lower `training.learning_rate`, set `training.gradient_clip`, or check the data; the last good checkpoint is kept")]
    NonFiniteLoss { step: u64, value: f64 },

    #[error("the validation loss became {value} at step {step}\nhelp: lower `training.learning_rate` or set `training.gradient_clip`; the last good checkpoint is kept (no checkpoint is written from these weights), so the run resumes from it with a smaller learning rate")]
    NonFiniteValidation { step: u64, value: f64 },

    #[error("training diverged at step {step}: the loss is {loss:.4} (it started at {first_loss:.4}) and the gradient norm is {grad_norm}\nhelp: lower `training.learning_rate` (e.g. by 10×) or set `training.gradient_clip`; the last good checkpoint is kept, so the run resumes from it with the smaller rate")]
    Diverged {
        step: u64,
        loss: f64,
        first_loss: f64,
        grad_norm: f64,
    },

    #[error("the adapter weights are not finite at step {step}: no checkpoint is written from them\nhelp: lower `training.learning_rate` or set `training.gradient_clip`; the last good checkpoint is kept")]
    NonFiniteWeights { step: u64 },

    #[error("checkpoint `{path}`: {message}")]
    Checkpoint { path: PathBuf, message: String },

    #[error("i/o error on `{}`: {source}{}", path.display(), ferrotune_model::error::write_help(source))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Model(Box<ferrotune_model::Error>),

    #[error(transparent)]
    Data(Box<ferrotune_data::Error>),

    #[error("cannot fetch the demo backbone: {0}")]
    DemoBackbone(#[source] ferrotune_home::AssetError),

    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl From<ferrotune_model::Error> for Error {
    fn from(e: ferrotune_model::Error) -> Self {
        Error::Model(Box::new(e))
    }
}

impl From<ferrotune_data::Error> for Error {
    fn from(e: ferrotune_data::Error) -> Self {
        Error::Data(Box::new(e))
    }
}

/// Result with the train crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
