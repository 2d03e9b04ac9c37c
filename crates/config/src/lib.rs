//! # ferrotune-config
//!
//! Experiment settings, each declared once. A setting's key (`training.learning_rate`), type, default, range or
//! choices, help, dependencies ("applies when `training.lora` is true") and grid-search flag live in one line of
//! `src/schema/<group>.rs`; the YAML reader and writer, command-line overrides, validation, `docs/settings.md`
//! and the studio's form are all generated from it.
//!
//! *Owns*: every setting's definition and default, the experiment file format, how overrides are read, and the
//! checks that need nothing but the settings (and, in [`check_environment`], the files they name). *Must not
//! touch*: files other than the experiment file it is asked to read or write and what [`check_environment`]
//! probes; datasets' contents, models, the registry. It never prints.
//!
//! Start reading at [`Experiment`] (the typed settings: `cfg.training.learning_rate`), [`settings`] (the metadata,
//! one [`Setting`] per key), [`apply_overrides`] and [`validate`].
//!
//! ```
//! use ferrotune_config::{apply_overrides, split_override_args, validate, Experiment};
//!
//! let mut cfg = Experiment::from_yaml_str("training:\n  epochs: 3\n", "`cfg.yaml`")?;
//! let args = ["--training.learning_rate", "2e-4", "--dataset.train_dataframe=train.csv"];
//! apply_overrides(&mut cfg, &split_override_args(&args)?)?;
//! assert_eq!((cfg.training.epochs, cfg.training.learning_rate), (3, 2e-4));
//! assert!(validate(&cfg).is_ok());
//! # Ok::<(), ferrotune_config::Error>(())
//! ```

mod check;
mod docs;
mod error;
pub mod h2o;
mod macros;
mod meta;
mod names;
mod overrides;
mod problem;
mod schema;
mod suggest;
mod validate;
mod value;
mod yaml;

pub use check::{check_environment, DATA_EXTENSIONS, LOW_DISK_ERROR_BYTES, LOW_DISK_WARNING_BYTES};
pub use docs::settings_markdown;
pub use error::{Error, Issue, Report, Result};
pub use meta::{
    groups, setting, settings, suggest_key, Bound, Condition, Group, Literal, Range, Setting, Test,
};
pub use names::{fresh_entropy, generate_name};
pub use overrides::{apply_overrides, load_with_overrides, split_override_args};
pub use schema::{
    column_name, expand_path, Architecture, Augmentation, BackboneDtype, Columns, DataSampleChoice,
    Dataset, Environment, Experiment, GptTemplate, GridValues, LogStepSize, Logger, Logging,
    LoraModule, LossFunction, Metric, MixedPrecisionDtype, Optimizer, Prediction, ProblemType,
    SaveCheckpoint, Schedule, Tokenizer, Training, ValidationStrategy, MLFLOW_TRACKING_URI_ENV,
    NO_COLUMN,
};
/// The YAML value type used for defaults, `get` and `set`.
pub use serde_yaml_ng::Value;
pub use suggest::did_you_mean;
pub use validate::{
    min_max_length, validate, CHAT_TEMPLATE_TOKENS, LARGE_GRID, MIN_CONTENT_TOKENS,
};
pub use value::Kind;
