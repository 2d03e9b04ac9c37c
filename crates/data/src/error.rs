//! The data crate's error type.

use std::path::PathBuf;

/// Errors of tokenizers, chat templates and datasets. Messages start lowercase, name the thing in backticks and
/// end with a `help:` line when there is a fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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

    #[error("the backbone has no chat template\nhelp: add `chat_template` to tokenizer_config.json (or a chat_template.jinja file), or run without --chat")]
    NoChatTemplate,

    #[error("chat template error: {0}")]
    ChatTemplate(String),
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
