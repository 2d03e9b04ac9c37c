//! The dataset settings of an experiment, with H2O LLM Studio's names, read from the experiment config
//! ([`DatasetSettings::from_experiment`]; its defaults are the config's); [`DatasetSettings::validate`] checks
//! what can be checked without files.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the validation set is chosen (the config's enum: `automatic` or `custom`).
pub use ferrotune_config::ValidationStrategy;

/// Where the data is, which columns hold what, and how a conversation becomes tokens and labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatasetSettings {
    /// The train file: `.csv`, `.parquet`/`.pq`, `.json` (array of objects) or `.jsonl`.
    pub train_dataframe: PathBuf,
    pub validation_strategy: ValidationStrategy,
    /// The validation file, for [`ValidationStrategy::Custom`].
    pub validation_dataframe: Option<PathBuf>,
    /// Fraction of conversations held out, for [`ValidationStrategy::Automatic`]; in (0, 1).
    pub validation_size: f64,
    /// Fraction of conversations kept (seeded); in (0, 1].
    pub data_sample: f64,
    /// Which sides `data_sample` applies to: `"Train"`, `"Validation"`.
    pub data_sample_choice: Vec<String>,
    /// Column with the system text (the conversation's first row's value is used). The default `system` may be
    /// absent from the file; any other name must exist.
    pub system_column: Option<String>,
    /// Columns whose non-empty values, joined by `prompt_column_separator`, form the prompt.
    pub prompt_column: Vec<String>,
    pub prompt_column_separator: String,
    pub answer_column: String,
    /// Preference pairs (DPO): the column of the rejected answer to each row's (chosen) answer.
    pub rejected_answer_column: Option<String>,
    /// Preference pairs: the column of the rejected answer's prompt (the chosen one's prompt when unset).
    pub rejected_prompt_column: Option<String>,
    /// Classification and regression: the label or target columns (the answer columns) and how they are read.
    pub targets: Option<crate::labels::TargetSettings>,
    /// Column with the id of the previous turn; chains rows into conversations.
    pub parent_id_column: Option<String>,
    /// Column with each row's id (`id` when unset and `parent_id_column` is set).
    pub id_column: Option<String>,
    pub text_system_start: String,
    pub text_prompt_start: String,
    pub text_answer_separator: String,
    pub add_eos_token_to_system: bool,
    pub add_eos_token_to_prompt: bool,
    pub add_eos_token_to_answer: bool,
    /// `dataset.personalize`: the (chatbot name, chatbot author) written into prompts and answers.
    pub personalize: Option<(String, String)>,
    /// Only whole conversations (rows that are no one's parent) become samples.
    pub limit_chained_samples: bool,
    /// No loss on system and prompt tokens.
    pub mask_prompt_labels: bool,
    /// With `mask_prompt_labels`, no loss on earlier answers of a chain either.
    pub only_last_answer: bool,
    /// Format with the backbone's chat template instead of the text markers.
    pub use_chat_template: bool,
    /// Most tokens per sample.
    pub max_length: usize,
    /// Most tokens of each system and prompt piece (its oldest cut) and of each answer (its end cut), before
    /// `max_length` applies to the whole sample (H2O LLM Studio's older `max_length_prompt` / `max_length_answer`).
    pub max_length_prompt: Option<usize>,
    pub max_length_answer: Option<usize>,
    /// Training batches are padded to this quantile of their lengths (1.0: the longest; 0: `max_length`).
    pub padding_quantile: f64,
    pub seed: u64,
    /// Augmentation (training side only): each earlier turn of a chained sample is dropped with this probability.
    pub skip_parent_probability: f64,
    /// Augmentation (training side only): with this probability a sample's earlier turns are replaced by the
    /// chain of a random other training sample.
    pub random_parent_probability: f64,
    /// Epochs to draw augmented variants for (a fresh draw per epoch); used only with the two probabilities.
    pub epochs: usize,
    /// Threads that tokenize (0: every core).
    pub workers: usize,
}

impl Default for DatasetSettings {
    /// The settings of a default experiment: the config's defaults are the only ones.
    fn default() -> Self {
        Self::from_experiment(&ferrotune_config::Experiment::default())
    }
}

impl DatasetSettings {
    /// The data settings of an experiment: its `dataset` group, `tokenizer.max_length` and
    /// `tokenizer.padding_quantile`, the seed, the parent augmentations and the epochs they are drawn for.
    pub fn from_experiment(cfg: &ferrotune_config::Experiment) -> Self {
        let d = &cfg.dataset;
        let column = |c: &str| ferrotune_config::column_name(c).map(String::from);
        let pairs = cfg.problem_type == ferrotune_config::ProblemType::TextDpoModeling;
        DatasetSettings {
            train_dataframe: ferrotune_config::expand_path(&d.train_dataframe),
            validation_strategy: d.validation_strategy,
            validation_dataframe: (!d.validation_dataframe.trim().is_empty())
                .then(|| ferrotune_config::expand_path(&d.validation_dataframe)),
            validation_size: d.validation_size,
            data_sample: d.data_sample,
            data_sample_choice: d
                .data_sample_choice
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            system_column: column(&d.system_column),
            prompt_column: d.prompt_column.clone(),
            prompt_column_separator: d.prompt_column_separator.clone(),
            answer_column: d.answer_column.first().to_string(),
            targets: targets(cfg),
            rejected_answer_column: pairs.then(|| column(&d.rejected_answer_column)).flatten(),
            rejected_prompt_column: pairs.then(|| column(&d.rejected_prompt_column)).flatten(),
            parent_id_column: column(&d.parent_id_column),
            id_column: column(&d.id_column),
            text_system_start: d.text_system_start.clone(),
            text_prompt_start: d.text_prompt_start.clone(),
            text_answer_separator: d.text_answer_separator.clone(),
            add_eos_token_to_system: d.add_eos_token_to_system,
            add_eos_token_to_prompt: d.add_eos_token_to_prompt,
            add_eos_token_to_answer: d.add_eos_token_to_answer,
            personalize: d
                .personalize
                .then(|| (d.chatbot_name.clone(), d.chatbot_author.clone())),
            limit_chained_samples: d.limit_chained_samples,
            mask_prompt_labels: d.mask_prompt_labels,
            only_last_answer: d.only_last_answer,
            use_chat_template: d.use_chat_template,
            max_length: cfg.tokenizer.max_length as usize,
            max_length_prompt: (cfg.tokenizer.max_length_prompt > 0)
                .then_some(cfg.tokenizer.max_length_prompt as usize),
            max_length_answer: (cfg.tokenizer.max_length_answer > 0)
                .then_some(cfg.tokenizer.max_length_answer as usize),
            padding_quantile: cfg.tokenizer.padding_quantile,
            seed: cfg.environment.seed.max(0) as u64,
            skip_parent_probability: cfg.augmentation.skip_parent_probability,
            random_parent_probability: cfg.augmentation.random_parent_probability,
            epochs: cfg.training.epochs as usize,
            workers: cfg.environment.number_of_workers as usize,
        }
    }
}

/// The head's labels of a classification or regression config (see [`crate::labels`]).
fn targets(cfg: &ferrotune_config::Experiment) -> Option<crate::labels::TargetSettings> {
    use crate::labels::{TargetKind, TargetSettings};
    use ferrotune_config::{LossFunction, ProblemType};
    let kind = match cfg.problem_type {
        ProblemType::TextCausalClassificationModeling => match cfg.training.loss_function {
            LossFunction::CrossEntropyLoss => TargetKind::Classes(cfg.dataset.num_classes as usize),
            _ => TargetKind::Binary,
        },
        ProblemType::TextCausalRegressionModeling => TargetKind::Values,
        ProblemType::TextCausalLanguageModeling | ProblemType::TextDpoModeling => return None,
    };
    Some(TargetSettings {
        columns: cfg
            .dataset
            .answer_column
            .named()
            .into_iter()
            .map(String::from)
            .collect(),
        kind,
    })
}

/// The default system column, which a file may lack.
pub(crate) const DEFAULT_SYSTEM_COLUMN: &str = "system";

impl DatasetSettings {
    /// Checks ranges and combinations without touching files.
    pub fn validate(&self) -> Result<()> {
        let invalid = |setting: &str, message: String, help: &str| {
            Err(Error::InvalidSetting {
                setting: format!("dataset.{setting}"),
                message,
                help: help.into(),
            })
        };
        if self.prompt_column.is_empty() {
            return invalid(
                "prompt_column",
                "no prompt column".into(),
                "name at least one column",
            );
        }
        if self.max_length == 0 {
            return invalid("max_length", "must be at least 1".into(), "e.g. 512");
        }
        if !(self.data_sample > 0.0 && self.data_sample <= 1.0) {
            return invalid(
                "data_sample",
                format!("{} is not in (0, 1]", self.data_sample),
                "1.0 uses all the data",
            );
        }
        if !(0.0..=1.0).contains(&self.padding_quantile) {
            return invalid(
                "padding_quantile",
                format!("{} is not in [0, 1]", self.padding_quantile),
                "1.0 pads to the longest sample of the batch",
            );
        }
        for choice in &self.data_sample_choice {
            if sample_side(choice).is_none() {
                return invalid(
                    "data_sample_choice",
                    format!("unknown choice `{choice}`"),
                    "use `Train` and/or `Validation`",
                );
            }
        }
        match self.validation_strategy {
            ValidationStrategy::Automatic => {
                if !(self.validation_size > 0.0 && self.validation_size < 1.0) {
                    return invalid(
                        "validation_size",
                        format!("{} is not in (0, 1)", self.validation_size),
                        "e.g. 0.01 holds out 1% of the conversations",
                    );
                }
            }
            ValidationStrategy::Custom => {
                if self.validation_dataframe.is_none() {
                    return invalid(
                        "validation_dataframe",
                        "the custom validation strategy needs a validation file".into(),
                        "set `dataset.validation_dataframe`, or set `dataset.validation_strategy` to automatic",
                    );
                }
            }
        }
        if let (Some(parent), Some(id)) = (&self.parent_id_column, &self.id_column) {
            if parent == id {
                return invalid(
                    "parent_id_column",
                    format!("`{parent}` is also the id column"),
                    "the parent id column names the previous turn's id; it must differ from `dataset.id_column`",
                );
            }
        }
        Ok(())
    }

    /// Whether `data_sample` applies to the train (`validation == false`) or validation side.
    pub(crate) fn samples_side(&self, validation: bool) -> bool {
        self.data_sample < 1.0
            && self
                .data_sample_choice
                .iter()
                .any(|c| sample_side(c) == Some(validation))
    }

    /// The id column in effect: `id_column`, or `id` when only `parent_id_column` is set.
    pub(crate) fn effective_id_column(&self) -> Option<String> {
        match (&self.id_column, &self.parent_id_column) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(_)) => Some("id".into()),
            (None, None) => None,
        }
    }
}

/// `Some(false)` for train, `Some(true)` for validation.
fn sample_side(choice: &str) -> Option<bool> {
    match choice.to_ascii_lowercase().as_str() {
        "train" => Some(false),
        "validation" => Some(true),
        _ => None,
    }
}

/// Decodes the escapes H2O's markers accept (`\n`, `\t`, `\r`, `\\`), as Python's `unicode_escape` would; other
/// backslashes stay as they are.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        DatasetSettings::default().validate().unwrap();
    }

    #[test]
    fn custom_strategy_needs_a_file() {
        let s = DatasetSettings {
            validation_strategy: ValidationStrategy::Custom,
            ..Default::default()
        };
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("dataset.validation_dataframe"), "{err}");
    }

    #[test]
    fn unescape_matches_python_for_common_escapes() {
        assert_eq!(unescape("<|a|>\\n"), "<|a|>\n");
        assert_eq!(unescape("a\\\\nb"), "a\\nb");
        assert_eq!(unescape("x\\qy\\"), "x\\qy\\");
        assert_eq!(unescape("real\nnewline"), "real\nnewline");
    }

    #[test]
    fn sample_choice_is_case_insensitive() {
        let s = DatasetSettings {
            data_sample: 0.5,
            data_sample_choice: vec!["train".into()],
            ..Default::default()
        };
        assert!(s.samples_side(false));
        assert!(!s.samples_side(true));
    }
}
