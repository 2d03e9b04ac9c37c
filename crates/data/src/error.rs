//! The data crate's error type.

use std::path::PathBuf;

/// Errors of tokenizers, chat templates and datasets. Messages start lowercase, name the thing in backticks and
/// end with a `help:` line when there is a fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("dataset `{}`, {at}: the label column `{column}` {message}\nhelp: {help}", path.display())]
    Label {
        path: PathBuf,
        /// Where: `line 3`, `row 7`, or `every training row`.
        at: String,
        column: String,
        message: String,
        help: String,
    },

    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{path}` is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("cannot load tokenizer `{path}`: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("tokenization failed: {0}")]
    Encode(String),

    #[error("the backbone has no chat template\nhelp: add `chat_template` to tokenizer_config.json (or a chat_template.jinja file); for training, `dataset.use_chat_template: false` uses the text markers instead")]
    NoChatTemplate,

    #[error("chat template error: {0}")]
    ChatTemplate(String),

    #[error("cannot read dataset `{}`: unsupported file type\nhelp: use a `.csv`, `.parquet` (or `.pq`), `.json` (an array of objects) or `.jsonl` (one object per line) file", path.display())]
    UnsupportedFormat { path: PathBuf },

    #[error("dataset `{}` is not valid UTF-8{}\nhelp: re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)", path.display(), at_line(*line))]
    NotUtf8 { path: PathBuf, line: Option<u64> },

    #[error("dataset `{}`, line {line}: expected {expected} fields like the header, found {found}\nhelp: quote fields that contain the delimiter or line breaks, and give every row the same number of fields", path.display())]
    RaggedCsv {
        path: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
    },

    #[error("dataset `{}`, line {line}: a quoted field opens on this line and is never closed (the file ends inside the quotes)\nhelp: close the quote; a quote inside a quoted field is written twice (`\"\"`)", path.display())]
    UnclosedQuote { path: PathBuf, line: u64 },

    #[error("dataset `{}` is not valid CSV{}: {message}", path.display(), at_line(*line))]
    Csv {
        path: PathBuf,
        line: Option<u64>,
        message: String,
    },

    #[error("dataset `{}` is not a JSON array of objects: {found}\nhelp: {help}", path.display())]
    JsonShape {
        path: PathBuf,
        found: String,
        help: String,
    },

    #[error("dataset `{}`, line {line}: {message}\nhelp: a `.jsonl` file holds one JSON object per line", path.display())]
    JsonLine {
        path: PathBuf,
        line: u64,
        message: String,
    },

    #[error("cannot read Parquet dataset `{}`: {message}", path.display())]
    Parquet { path: PathBuf, message: String },

    #[error("dataset `{}` is not a readable Parquet file: {message}\nhelp: the file is not Parquet or was cut short; write it again (pandas `DataFrame.to_parquet`, polars `write_parquet`)", path.display())]
    CorruptParquet { path: PathBuf, message: String },

    #[error("dataset `{}` has no rows\nhelp: {help}", path.display())]
    EmptyDataset { path: PathBuf, help: String },

    #[error("dataset `{}` has no column `{column}`\nhelp: {}", path.display(), column_help(columns, suggestion.as_deref(), setting))]
    MissingColumn {
        path: PathBuf,
        column: String,
        /// The setting that named the column, e.g. `dataset.answer_column`.
        setting: String,
        columns: Vec<String>,
        suggestion: Option<String>,
    },

    #[error("every value of the answer column `{column}` in `{}` is empty\nhelp: check `dataset.answer_column`; the model learns from the answers", path.display())]
    EmptyAnswers { path: PathBuf, column: String },

    #[error("dataset `{}` has the id `{id}` twice in column `{column}` ({first} and {second})\nhelp: ids must be unique for `dataset.parent_id_column` to chain conversations", path.display())]
    DuplicateId {
        path: PathBuf,
        column: String,
        id: String,
        first: String,
        second: String,
    },

    #[error("dataset `{}`, {location}: parent id `{parent}` (column `{column}`) is not an id in column `{id_column}`\nhelp: leave the parent id empty for the first turn of a conversation, or fix the id", path.display())]
    MissingParent {
        path: PathBuf,
        location: String,
        column: String,
        parent: String,
        id_column: String,
    },

    #[error("dataset `{}`: the parent ids in column `{column}` form a cycle through id `{id}`\nhelp: every conversation must start at a row whose parent id is empty", path.display())]
    ParentCycle {
        path: PathBuf,
        column: String,
        id: String,
    },

    #[error("invalid setting `{setting}`: {message}\nhelp: {help}")]
    InvalidSetting {
        setting: String,
        message: String,
        help: String,
    },

    #[error("the tokenizer has no {what} token\nhelp: {help}")]
    MissingSpecialToken { what: String, help: String },

    #[error("the chat template does not render conversations incrementally (turn {turn}: {detail}), so answer tokens cannot be located\nhelp: set `dataset.use_chat_template` to false to use the text markers instead")]
    ChatTemplateNotIncremental { turn: usize, detail: String },

    #[error("every label of every training sample is masked, so there is nothing to learn ({samples} samples)\nhelp: {help}")]
    NoTrainableLabels { samples: usize, help: String },

    #[error("cannot split `{}` into train and validation: {message}\nhelp: {help}", path.display())]
    Split {
        path: PathBuf,
        message: String,
        help: String,
    },

    #[error("cannot tell which columns of `{}` hold the prompt and the answer\nhelp: {}; name the prompt and answer columns (`mapping.prompt`, `mapping.answer`), or pick a layout (`mapping.shape`: {})", path.display(), column_list(columns), crate::import::Shape::names())]
    UnknownLayout { path: PathBuf, columns: Vec<String> },

    #[error("dataset `{}`, {location}: {message}\nhelp: {help}", path.display())]
    BadConversation {
        path: PathBuf,
        location: String,
        message: String,
        help: String,
    },

    #[error("in `{}` every rejected answer (column `{rejected}`) equals its chosen answer (column `{chosen}`), so there is no preference to learn\nhelp: check `dataset.answer_column` and `dataset.rejected_answer_column`", path.display())]
    NoPreference {
        path: PathBuf,
        chosen: String,
        rejected: String,
    },

    #[error("every answer imported from `{}` (column `{column}`) is empty\nhelp: the model learns from the answers; name the answer column (`mapping.answer`)", path.display())]
    NoAnswers { path: PathBuf, column: String },
}

fn column_list(columns: &[String]) -> String {
    if columns.is_empty() {
        return "it has no columns".to_string();
    }
    let names: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
    format!("its columns are {}", names.join(", "))
}

fn at_line(line: Option<u64>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

fn column_help(columns: &[String], suggestion: Option<&str>, setting: &str) -> String {
    let list = if columns.is_empty() {
        "it has no columns".to_string()
    } else {
        let names: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
        format!("its columns are {}", names.join(", "))
    };
    match suggestion {
        Some(s) => format!("{list}; did you mean `{s}`? set `{setting}`"),
        None => format!("{list}; set `{setting}`"),
    }
}

/// Result with the data crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads a file to a string, naming it on failure.
pub(crate) fn read_to_string(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and parses a JSON file, naming it on failure.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// What is wrong with one line of a `.jsonl` file, placed by column only: the file's line number is the caller's
/// (serde counts the lines of the one line it was given, which would contradict it).
pub(crate) fn json_line_problem(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let what = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => text.as_str(),
    };
    if e.line() > 1 {
        // The value ran past the end of the line (an object broken over two lines, or cut short).
        format!("invalid JSON: {what} (the line ends before the value does)")
    } else {
        format!("invalid JSON: {what} at column {}", e.column())
    }
}
