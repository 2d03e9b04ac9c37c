//! The schema: [`Experiment`] with its top-level settings and one struct per group, each declared once with
//! `settings_struct!` in its own file. Read a value as a field (`cfg.training.learning_rate`); get or set one by
//! key (`cfg.get("training.learning_rate")`) where the key comes from data (YAML, command line, GUI form).

mod architecture;
mod augmentation;
mod dataset;
mod environment;
mod logging;
mod prediction;
mod tokenizer;
mod training;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_yaml_ng::Value;

pub use architecture::{Architecture, BackboneDtype};
pub use augmentation::Augmentation;
pub use dataset::{column_name, Columns, DataSampleChoice, Dataset, ValidationStrategy, NO_COLUMN};
pub use environment::{Environment, MixedPrecisionDtype};
pub use logging::{LogStepSize, Logger, Logging, MLFLOW_TRACKING_URI_ENV};
pub use prediction::{GptTemplate, Metric, Prediction};
pub use tokenizer::Tokenizer;
pub use training::{LoraModule, LossFunction, Optimizer, SaveCheckpoint, Schedule, Training};

use crate::error::Issue;
use crate::macros::settings_struct;
use crate::meta::{groups, meta, setting, settings, suggest_key, Setting};
use crate::names::{generate_name, mix};
use crate::value::{choice_enum, describe, Mismatch};

choice_enum! {
    /// What the experiment trains (H2O LLM Studio's names). What each type changes — its defaults, losses and
    /// metrics — is declared in `crate::problem`.
    pub enum ProblemType {
        /// Next-token prediction of answers given prompts (supervised fine-tuning).
        TextCausalLanguageModeling = "text_causal_language_modeling",
        /// Preference tuning on pairs of a chosen and a rejected answer (DPO and its variants, ORPO).
        TextDpoModeling = "text_dpo_modeling",
        /// A label (or several) per sample from a linear head on the last token's hidden state.
        TextCausalClassificationModeling = "text_causal_classification_modeling",
        /// A number (or several) per sample from a linear head on the last token's hidden state.
        TextCausalRegressionModeling = "text_causal_regression_modeling",
    }
}

/// Values of grid-enabled settings in a grid search: key → values (the first is also in the field).
pub type GridValues = BTreeMap<&'static str, Vec<Value>>;

settings_struct! {
    /// An experiment: the top-level settings and one struct per group.
    pub struct Experiment in "" {
        /// What the experiment trains; it decides the losses, metrics and some defaults (see the problem types below).
        problem_type: ProblemType = ProblemType::TextCausalLanguageModeling => meta().label("Problem type").basic();
        /// Name of the experiment; empty: an adjective-animal name is drawn when the run starts.
        experiment_name: String = String::new() => meta().basic();
        /// Backbone: a Hugging Face folder or a .gguf file; empty: the demo backbone (SmolLM2-135M-Instruct).
        llm_backbone: String = String::new() => meta().label("Backbone").basic().path().grid();
        /// Folder for checkpoints, logs and predictions; `{experiment_name}` is replaced by the experiment's name.
        output_directory: String = "output/{experiment_name}".into() => meta().path();
        /// Grid search: one experiment per combination of the values listed for grid-enabled settings.
        grid_search: bool = false => meta();
    }
    groups {
        dataset: Dataset,
        tokenizer: Tokenizer,
        architecture: Architecture,
        training: Training,
        augmentation: Augmentation,
        prediction: Prediction,
        environment: Environment,
        logging: Logging,
    }
    extra {
        /// The value lists of a grid search (see [`GridValues`]); empty outside one.
        grid: GridValues = GridValues::new(),
        /// H2O LLM Studio keys read and ignored, each with why (validation reports them as warnings).
        ignored: Vec<Issue> = Vec::new(),
    }
}

/// Get and set settings by name; implemented by `settings_struct!`.
pub(crate) trait Fields {
    fn get_field(&self, name: &str) -> Option<Value>;
    /// Sets the field if `value` fits its type and returns the value as the field writes it back.
    fn set_field(&mut self, name: &str, value: &Value) -> Option<Result<Value, Mismatch>>;
    fn child(&self, _name: &str) -> Option<&dyn Fields> {
        None
    }
    fn child_mut(&mut self, _name: &str) -> Option<&mut dyn Fields> {
        None
    }
}

impl Experiment {
    /// The current value of the setting `key` as YAML writes it (a grid's first value); `None` for unknown keys.
    pub fn get(&self, key: &str) -> Option<Value> {
        match key.split_once('.') {
            None => self.get_field(key),
            Some((group, name)) => self.child(group)?.get_field(name),
        }
    }

    /// Sets the setting `key` from a YAML value, checked against its type. A list for a grid-enabled setting that
    /// is not itself a list is a grid: the field takes the first value and [`Experiment::grid`] keeps them all.
    pub fn set(&mut self, key: &str, value: &Value) -> Result<(), Issue> {
        if let Some(read) = crate::h2o::read(key, value) {
            if let Some(warning) = read? {
                if !self.ignored.iter().any(|w| w.key == warning.key) {
                    self.ignored.push(warning);
                }
            }
            return Ok(());
        }
        if key == "logging.logger" {
            if let Some(name) = value
                .as_str()
                .filter(|n| ["Neptune", "W&B", "Wandb"].contains(n))
            {
                return Err(Issue::new(
                    key,
                    format!("is `{name}`, which needs internet access to its service"),
                )
                .with_help("use `TensorBoard` (event files in the run folder, read offline by `tensorboard --logdir`), `MLflow` (a tracking server you run, e.g. on this machine) or `None`"));
            }
        }
        let setting = setting(key).ok_or_else(|| unknown_key(key))?;
        // H2O writes `gpus: ['']` for none.
        let cleaned;
        let value = match value {
            Value::Sequence(items) if key == "environment.gpus" => {
                cleaned = Value::Sequence(
                    items
                        .iter()
                        .filter(|v| v.as_str().is_none_or(|s| !s.trim().is_empty()))
                        .cloned()
                        .collect(),
                );
                &cleaned
            }
            other => other,
        };
        if let Value::Sequence(items) = value {
            if !setting.kind.is_list() {
                return self.set_grid(setting, items);
            }
        }
        if setting.key == "problem_type" {
            // A type brings its defaults (see `crate::problem`).
            let mut probe = self.clone();
            probe.set_checked(setting, value)?;
            self.switch_problem_type(probe.problem_type);
            return Ok(());
        }
        self.set_checked(setting, value)?;
        self.grid.remove(setting.key);
        Ok(())
    }

    fn set_grid(&mut self, setting: &'static Setting, items: &[Value]) -> Result<(), Issue> {
        if !setting.grid {
            return Err(Issue::new(setting.key, format!("expects {}, found a list", setting.kind.expected()))
                .with_help(format!(
                    "only grid-enabled settings take a list of values (for a grid search), and `{}` is not one",
                    setting.key
                )));
        }
        let Some(first) = items.first() else {
            return Err(Issue::new(setting.key, "has an empty list of grid values")
                .with_help("list at least one value, or write a single value"));
        };
        let mut values = Vec::with_capacity(items.len());
        for item in items {
            values.push(self.set_checked(setting, item)?);
        }
        self.set_checked(setting, first)?;
        self.grid.insert(setting.key, values);
        Ok(())
    }

    /// Sets one value (no grid handling) and returns it as written back.
    fn set_checked(&mut self, setting: &'static Setting, value: &Value) -> Result<Value, Issue> {
        let result = match setting.key.split_once('.') {
            None => self.set_field(setting.name, value),
            Some((group, name)) => self.child_mut(group).and_then(|g| g.set_field(name, value)),
        };
        match result {
            Some(Ok(canonical)) => Ok(canonical),
            Some(Err(mismatch)) => {
                let issue = Issue::new(
                    setting.key,
                    format!(
                        "expects {}, found {}",
                        setting.kind.expected(),
                        describe(value)
                    ),
                );
                Err(match mismatch.help {
                    Some(help) => issue.with_help(help),
                    None => issue,
                })
            }
            None => Err(unknown_key(setting.key)),
        }
    }

    /// Whether the setting `key` has an effect with the current values of the settings it depends on (false for
    /// unknown keys). E.g. `training.lora_r` applies only when `training.lora` is true.
    pub fn applies(&self, key: &str) -> bool {
        setting(key).is_some_and(|s| {
            s.applies_when
                .iter()
                .all(|c| self.get(c.key).is_some_and(|v| c.holds(&v)))
        })
    }

    /// The output folder: `output_directory` with `{experiment_name}` replaced and a leading `~/` expanded.
    pub fn output_dir(&self) -> PathBuf {
        expand_path(
            &self
                .output_directory
                .replace("{experiment_name}", &self.experiment_name),
        )
    }

    /// Settles what a run draws: an empty `experiment_name` becomes an adjective-animal name and a seed of -1 a
    /// seed in 0..1_000_000, both derived from `entropy` (same entropy, same result). Call it once when a run
    /// starts and save the result with the run.
    pub fn fill_generated(&mut self, entropy: u64) {
        if self.experiment_name.trim().is_empty() {
            self.experiment_name = generate_name(entropy);
        }
        if self.environment.seed == -1 {
            self.environment.seed = (mix(entropy ^ 0x5eed) % 1_000_000) as i64;
        }
    }

    /// One experiment per combination of the grid's values, without grid lists and with `grid_search` off; the
    /// experiment itself when there is no grid.
    pub fn expand_grid(&self) -> Vec<Experiment> {
        let mut base = self.clone();
        base.grid.clear();
        base.grid_search = false;
        let mut out = vec![base];
        for (key, values) in &self.grid {
            out = out
                .into_iter()
                .flat_map(|e| {
                    values.iter().filter_map(move |v| {
                        let mut e = e.clone();
                        e.set(key, v).ok().map(|()| e)
                    })
                })
                .collect();
        }
        out
    }

    /// Group keys and their settings, in schema order, top-level settings under `""` first.
    pub fn layout() -> Vec<(&'static str, Vec<&'static Setting>)> {
        let mut out = vec![(
            "",
            settings().iter().filter(|s| s.group.is_empty()).collect(),
        )];
        for g in groups() {
            out.push((
                g.key,
                settings().iter().filter(|s| s.group == g.key).collect(),
            ));
        }
        out
    }
}

/// The issue for a key that is not a setting, with the closest key as a suggestion.
pub(crate) fn unknown_key(key: &str) -> Issue {
    if let Some(first) = settings().iter().find(|s| s.group == key) {
        return Issue::new(key, "is a group of settings, not a setting")
            .with_help(format!("name a setting in it, e.g. `{}`", first.key));
    }
    let issue = Issue::new(key, "is not a setting");
    match suggest_key(key) {
        Some(k) => issue.with_help(format!("did you mean `{k}`?")),
        None => issue.with_help("docs/settings.md lists every setting"),
    }
}

/// A path as written in a setting: a leading `~/` (or a lone `~`) means the home folder.
pub fn expand_path(path: &str) -> PathBuf {
    let home = || {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
    };
    if path == "~" {
        if let Some(h) = home() {
            return h;
        }
    }
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(h) = home() {
            return h.join(rest);
        }
    }
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_set_by_key() {
        let mut cfg = Experiment::default();
        assert_eq!(cfg.get("training.learning_rate"), Some(Value::from(1e-4)));
        cfg.set("training.learning_rate", &Value::from(3e-4))
            .unwrap();
        assert_eq!(cfg.training.learning_rate, 3e-4);
        cfg.set("llm_backbone", &Value::from("models/x")).unwrap();
        assert_eq!(cfg.llm_backbone, "models/x");
        let err = cfg
            .set("training.optimizer", &Value::from("adamw"))
            .unwrap_err();
        assert_eq!(err.key, "training.optimizer");
        assert!(err.message.contains("`AdamW`"), "{err}");
        assert_eq!(err.help.as_deref(), Some("did you mean `AdamW`?"));
        assert!(cfg.get("training.nope").is_none());
    }

    #[test]
    fn a_list_for_a_grid_setting_is_a_grid() {
        let mut cfg = Experiment::default();
        let list: Value = serde_yaml_ng::from_str("[1, 0.5]").unwrap();
        cfg.set("training.learning_rate", &list).unwrap();
        assert_eq!(cfg.training.learning_rate, 1.0);
        assert_eq!(
            cfg.grid["training.learning_rate"],
            vec![Value::from(1.0), Value::from(0.5)]
        );
        cfg.set("training.learning_rate", &Value::from(0.1))
            .unwrap();
        assert!(cfg.grid.is_empty(), "a single value replaces the grid");
        let err = cfg.set("training.lora", &list).unwrap_err();
        assert!(err.help.unwrap().contains("not one"));
    }

    #[test]
    fn grid_expands_to_every_combination() {
        let mut cfg = Experiment {
            grid_search: true,
            ..Experiment::default()
        };
        cfg.set(
            "training.lora_r",
            &serde_yaml_ng::from_str("[4, 8, 16]").unwrap(),
        )
        .unwrap();
        cfg.set(
            "training.optimizer",
            &serde_yaml_ng::from_str("[AdamW, SGD]").unwrap(),
        )
        .unwrap();
        let runs = cfg.expand_grid();
        assert_eq!(runs.len(), 6);
        assert!(runs.iter().all(|r| r.grid.is_empty() && !r.grid_search));
        assert!(runs
            .iter()
            .any(|r| r.training.lora_r == 16 && r.training.optimizer == Optimizer::Sgd));
    }

    #[test]
    fn dependencies_follow_the_values() {
        let mut cfg = Experiment::default();
        assert!(cfg.applies("training.lora_r"));
        cfg.training.lora = false;
        assert!(!cfg.applies("training.lora_r"));
        assert!(!cfg.applies("dataset.validation_dataframe"));
        cfg.dataset.validation_strategy = ValidationStrategy::Custom;
        assert!(cfg.applies("dataset.validation_dataframe"));
        assert!(!cfg.applies("training.differential_learning_rate"));
        cfg.training.differential_learning_rate_layers = vec!["lm_head".into()];
        assert!(cfg.applies("training.differential_learning_rate"));
    }

    #[test]
    fn generated_name_and_seed_are_reproducible() {
        let (mut a, mut b) = (Experiment::default(), Experiment::default());
        a.fill_generated(42);
        b.fill_generated(42);
        assert_eq!(a, b);
        assert!(!a.experiment_name.is_empty() && (0..1_000_000).contains(&a.environment.seed));
        a.experiment_name = "kept".into();
        a.environment.seed = 7;
        a.fill_generated(1);
        assert_eq!(
            (a.experiment_name.as_str(), a.environment.seed),
            ("kept", 7)
        );
        assert_eq!(a.output_dir(), PathBuf::from("output/kept"));
    }
}
