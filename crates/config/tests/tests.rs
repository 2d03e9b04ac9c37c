//! Integration tests of ferrotune-config, one module per theme (one test binary).

mod docs;
mod environment;
mod examples;
mod h2o;
mod metadata;
mod overrides;
mod roundtrip;
mod validation;

use ferrotune_config::{Error, Experiment, Issue};

/// A config whose pure validation is clean: the defaults plus a training file.
pub fn valid() -> Experiment {
    let mut cfg = Experiment::default();
    cfg.dataset.train_dataframe = "train.csv".into();
    cfg
}

/// The issues of a settings error (panics on other errors).
pub fn issues(err: Error) -> Vec<Issue> {
    match err {
        Error::Settings { issues, .. } => issues,
        other => panic!("expected a settings error, got {other}"),
    }
}
