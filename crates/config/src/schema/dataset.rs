//! `dataset`: which files, how the validation split is made, and how prompts and answers are built from columns.

use crate::macros::settings_struct;
use crate::meta::meta;
use crate::value::choice_enum;

choice_enum! {
    /// Where the validation data comes from.
    pub enum ValidationStrategy {
        /// A random `validation_size` share of the training data is held out.
        Automatic = "automatic",
        /// The rows of `validation_dataframe`.
        Custom = "custom",
    }
}

choice_enum! {
    /// Which data `data_sample` shrinks.
    pub enum DataSampleChoice {
        Train = "Train",
        Validation = "Validation",
    }
}

settings_struct! {
    /// Dataset: the training and validation files and how prompt and answer texts are built from their columns.
    pub struct Dataset in "dataset." {
        /// Training data: a .csv, .parquet, .json or .jsonl file.
        train_dataframe: String = String::new() => meta().label("Training data").basic().path();
        /// `automatic` holds out part of the training data; `custom` reads `validation_dataframe`.
        validation_strategy: ValidationStrategy = ValidationStrategy::Automatic => meta();
        /// Validation data: a .csv, .parquet, .json or .jsonl file.
        validation_dataframe: String = String::new() => meta().label("Validation data").path().when("dataset.validation_strategy", "custom");
        /// Share of the training data held out for validation.
        validation_size: f64 = 0.01 => meta().above(0.0).below(1.0).when("dataset.validation_strategy", "automatic");
        /// Share of the data to use (1.0: all of it); handy for quick trial runs.
        data_sample: f64 = 1.0 => meta().above(0.0).max(1.0);
        /// Which data `data_sample` applies to.
        data_sample_choice: Vec<DataSampleChoice> = DataSampleChoice::ALL.to_vec() => meta().label("Data sample applies to").unless("dataset.data_sample", 1.0);
        /// Column with the system prompt, or `None` for no system prompt.
        system_column: String = "system".into() => meta();
        /// Columns joined (with `prompt_column_separator`) into the prompt.
        prompt_column: Vec<String> = vec!["instruction".into(), "input".into()] => meta().label("Prompt columns");
        /// Text between the prompt columns.
        prompt_column_separator: String = "\n\n".into() => meta();
        /// Column with the answer the model learns to give (DPO: the chosen answer; classification and regression: the label, or one column per label or target).
        answer_column: Columns = "output".into() => meta();
        /// Classification: the number of classes (1: binary, 0/1 labels; with several answer columns, one per column: multilabel).
        num_classes: u32 = 1 => meta().min(1.0).max(100.0).when("problem_type", "text_causal_classification_modeling");
        /// DPO: column with the prompt of the rejected answer, or `None` for the same prompt as the chosen one.
        rejected_prompt_column: String = "None".into() => meta().when("problem_type", "text_dpo_modeling");
        /// DPO: column with the rejected answer (the one not preferred).
        rejected_answer_column: String = "rejected_response".into() => meta().when("problem_type", "text_dpo_modeling");
        /// Column with the id of the previous turn (chained conversations), or `None`.
        parent_id_column: String = "None".into() => meta().label("Parent-id column");
        /// Column with the id of each row (what `parent_id_column` refers to), or `None`.
        id_column: String = "None".into() => meta().unless("dataset.parent_id_column", "None");
        /// Format conversations with the backbone's chat template instead of the marker texts below.
        use_chat_template: bool = false => meta();
        /// Marker text before the system prompt.
        text_system_start: String = "<|system|>".into() => meta().label("System marker").unless("dataset.system_column", "None").when("dataset.use_chat_template", false);
        /// Marker text before each prompt.
        text_prompt_start: String = "<|prompt|>".into() => meta().label("Prompt marker").when("dataset.use_chat_template", false);
        /// Marker text between prompt and answer.
        text_answer_separator: String = "<|answer|>".into() => meta().label("Answer marker").when("dataset.use_chat_template", false);
        /// Add the end-of-sequence token after the system prompt.
        add_eos_token_to_system: bool = true => meta().label("EOS token after the system prompt").unless("dataset.system_column", "None").when("dataset.use_chat_template", false);
        /// Add the end-of-sequence token after each prompt.
        add_eos_token_to_prompt: bool = true => meta().label("EOS token after each prompt").when("dataset.use_chat_template", false);
        /// Add the end-of-sequence token after each answer.
        add_eos_token_to_answer: bool = true => meta().label("EOS token after each answer").when("dataset.use_chat_template", false);
        /// Rewrite the assistant's identity in prompts and answers as H2O LLM Studio does: "Open Assistant", "ChatGPT", "Assistant" (and misspellings) become `chatbot_name`, "LAION", "OpenAI" become `chatbot_author`.
        personalize: bool = false => meta();
        /// The assistant's name that `personalize` writes.
        chatbot_name: String = "h2oGPT".into() => meta().when("dataset.personalize", true);
        /// The assistant's maker that `personalize` writes.
        chatbot_author: String = "H2O.ai".into() => meta().when("dataset.personalize", true);
        /// Build each sample from a whole conversation only, not from each of its partial chains.
        limit_chained_samples: bool = false => meta().unless("dataset.parent_id_column", "None");
        /// Compute the loss on answers only, not on prompts.
        mask_prompt_labels: bool = true => meta();
        /// In chained conversations, compute the loss on the last answer only.
        only_last_answer: bool = false => meta().unless("dataset.parent_id_column", "None");
    }
}

/// One column or several (`answer_column`). YAML writes one column as a plain name, as H2O LLM Studio does
/// (`answer_column: output`), and several as a list; both read back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Columns(pub Vec<String>);

impl Columns {
    /// The column names, in order.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// The first column (the only one outside classification and regression), or `""`.
    pub fn first(&self) -> &str {
        self.0.first().map_or("", String::as_str)
    }

    /// The columns that name something (not empty, not `None`).
    pub fn named(&self) -> Vec<&str> {
        self.0.iter().filter_map(|c| column_name(c)).collect()
    }
}

impl From<&str> for Columns {
    fn from(name: &str) -> Self {
        Columns(vec![name.to_string()])
    }
}

impl From<String> for Columns {
    fn from(name: String) -> Self {
        Columns(vec![name])
    }
}

impl PartialEq<&str> for Columns {
    fn eq(&self, other: &&str) -> bool {
        self.0.len() == 1 && self.0[0] == *other
    }
}

impl std::fmt::Display for Columns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

impl crate::value::SettingValue for Columns {
    const KIND: crate::value::Kind = crate::value::Kind::List {
        item: &crate::value::Kind::Text,
    };
    fn to_value(&self) -> serde_yaml_ng::Value {
        match self.0.as_slice() {
            [one] => serde_yaml_ng::Value::String(one.clone()),
            all => crate::value::SettingValue::to_value(&all.to_vec()),
        }
    }
    fn from_value(value: &serde_yaml_ng::Value) -> Result<Self, crate::value::Mismatch> {
        <Vec<String> as crate::value::SettingValue>::from_value(value).map(Columns)
    }
}

/// H2O LLM Studio's placeholder for "no column" in the optional column settings.
pub const NO_COLUMN: &str = "None";

/// The column an optional column setting names: `None` for an empty value or H2O's `"None"` placeholder.
pub fn column_name(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty() && value != NO_COLUMN).then_some(value)
}

impl Dataset {
    /// The system column, if one is set.
    pub fn system_column_name(&self) -> Option<&str> {
        column_name(&self.system_column)
    }

    /// The (first) answer column, if one is set (validation requires it).
    pub fn answer_column_name(&self) -> Option<&str> {
        column_name(self.answer_column.first())
    }

    /// The rejected-prompt column (DPO), if one is set.
    pub fn rejected_prompt_column_name(&self) -> Option<&str> {
        column_name(&self.rejected_prompt_column)
    }

    /// The rejected-answer column (DPO), if one is set.
    pub fn rejected_answer_column_name(&self) -> Option<&str> {
        column_name(&self.rejected_answer_column)
    }

    /// The parent-id column, if conversations are chained.
    pub fn parent_id_column_name(&self) -> Option<&str> {
        column_name(&self.parent_id_column)
    }

    /// The id column, if one is set.
    pub fn id_column_name(&self) -> Option<&str> {
        column_name(&self.id_column)
    }
}
