//! The store's error type.

use std::path::PathBuf;

/// Errors of the registry and the home's files. Messages start lowercase, name the thing in backticks and end
/// with a `help:` line when there is a fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o error on `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("registry `{}`: {source}\nhelp: if the registry is damaged, rebuild it from the files with `ferrotune doctor --rebuild-index`", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("registry `{}` has schema version {found}, newer than this ferrotune knows ({known})\nhelp: upgrade ferrotune, or rebuild the registry for this version with `ferrotune doctor --rebuild-index`", path.display())]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error(transparent)]
    Data(Box<ferrotune_data::Error>),

    #[error("in `{}` (member `{member}`): {source}", archive.display())]
    InArchive {
        archive: PathBuf,
        member: String,
        #[source]
        source: Box<ferrotune_data::Error>,
    },

    #[error("cannot read zip archive `{}`: {message}\nhelp: check that the file is a complete .zip archive", path.display())]
    Archive { path: PathBuf, message: String },

    #[error("cannot find `{}`\nhelp: check the path; import takes a .csv, .parquet, .json or .jsonl file, a folder of them or a .zip archive", path.display())]
    InputNotFound { path: PathBuf },

    #[error("`{}` holds no dataset files\nhelp: a folder or .zip archive is imported by its .csv, .parquet, .json and .jsonl files", path.display())]
    NoDataFiles { path: PathBuf },

    #[error("invalid dataset name `{name}`: {reason}\nhelp: use letters, digits, `-`, `_` and `.`, not starting with `.` (at most 100 characters)")]
    InvalidName { name: String, reason: String },

    #[error("a dataset named `{name}` already exists\nhelp: choose another --name, add rows with `ferrotune dataset merge {name} FILE`, or remove it with `ferrotune dataset delete {name}`")]
    DatasetExists { name: String },

    #[error("no dataset named `{name}`\nhelp: {}", not_found_help(suggestion.as_deref()))]
    DatasetNotFound {
        name: String,
        suggestion: Option<String>,
    },

    #[error("dataset metadata `{}` is unreadable: {message}\nhelp: restore the file, or delete the dataset folder and import the data again", path.display())]
    BadMetadata { path: PathBuf, message: String },
}

impl From<ferrotune_data::Error> for Error {
    fn from(e: ferrotune_data::Error) -> Self {
        Error::Data(Box::new(e))
    }
}

fn not_found_help(suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!("did you mean `{s}`? `ferrotune dataset list` shows every dataset"),
        None => "`ferrotune dataset list` shows every dataset; import one with `ferrotune dataset import FILE --name NAME`".into(),
    }
}

/// Result with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps an i/o error to [`Error::Io`] naming `path`.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
