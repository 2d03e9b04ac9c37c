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

    #[error(transparent)]
    Export(Box<ferrotune_export::Error>),

    #[error("`{}` is not an H2O LLM Studio experiment folder Ferrotune can read: {reason}\nhelp: give the folder H2O LLM Studio saved the experiment in (its `cfg.yaml` and `adapter_model/`)", path.display())]
    NotAnH2oExperiment { path: PathBuf, reason: String },

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

    #[error("`{}` holds no dataset files{}\nhelp: a folder or .zip archive is imported by its .csv, .parquet, .json and .jsonl files{}", path.display(), skipped_unsafe(unsafe_members), unsafe_help(unsafe_members))]
    NoDataFiles {
        path: PathBuf,
        /// Archive members skipped because their path leaves the archive.
        unsafe_members: Vec<String>,
    },

    #[error("invalid {kind} name `{name}`: {reason}\nhelp: use letters, digits, `-`, `_` and `.`, not starting with `.` (at most 100 characters)")]
    InvalidName {
        /// What the name is for: `dataset` or `backbone`.
        kind: &'static str,
        name: String,
        reason: String,
    },

    #[error("a dataset named `{name}` already exists\nhelp: choose another name, add rows with `ferrotune dataset merge {name} FILE`, or remove it with `ferrotune dataset delete {name}`")]
    DatasetExists { name: String },

    #[error("no dataset named `{name}`\nhelp: {}", not_found_help(suggestion.as_deref()))]
    DatasetNotFound {
        name: String,
        suggestion: Option<String>,
    },

    #[error("dataset metadata `{}` is unreadable: {message}\nhelp: restore the file, or delete the dataset folder and import the data again", path.display())]
    BadMetadata { path: PathBuf, message: String },

    #[error(transparent)]
    Config(Box<ferrotune_config::Error>),

    #[error("{}\nhelp: fix the settings named above (`ferrotune config validate FILE` checks a file alone)", problems.join("\n"))]
    InvalidSettings { problems: Vec<String> },

    #[error("invalid experiment name `{name}`: {reason}\nhelp: use letters, digits, `-`, `_` and `.`, not starting with `.` (at most 100 characters)")]
    InvalidExperimentName { name: String, reason: String },

    #[error("an experiment named `{name}` already exists\nhelp: choose another name, or remove the old one with `ferrotune experiment delete {name}`")]
    ExperimentExists { name: String },

    #[error("the folder `{}` exists but no experiment is registered for it\nhelp: run `ferrotune doctor --rebuild-index` to register it again, or remove the folder", path.display())]
    ExperimentFolderExists { path: PathBuf },

    #[error("no experiment named `{name}`\nhelp: {}", experiment_help(suggestion.as_deref()))]
    ExperimentNotFound {
        name: String,
        suggestion: Option<String>,
    },

    #[error("experiment `{name}` is {status}, so it cannot be {action}\nhelp: {help}")]
    WrongStatus {
        name: String,
        status: &'static str,
        action: &'static str,
        help: String,
    },

    #[error("experiment `{name}` has no checkpoint to resume from in `{}`\nhelp: a run writes its first checkpoint at its first evaluation; start it again with `ferrotune experiment restart {name}`", dir.display())]
    NoCheckpoint { name: String, dir: PathBuf },

    #[error("experiment `{name}` has no {what} yet (it is {when})")]
    RunFileMissing {
        name: String,
        what: &'static str,
        when: &'static str,
    },

    #[error("no download `{name}`\nhelp: the downloads are {known}")]
    UnknownArtifact { name: String, known: String },

    #[error("`{}` cannot be read: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },

    #[error("the grid gives two experiments the same name `{name}`\nhelp: choose a different base name, or list distinct values")]
    GridNameClash { name: String },

    #[error("a backbone named `{name}` is already registered\nhelp: choose another name, or remove the old entry first")]
    BackboneExists { name: String },

    #[error("no backbone named `{name}` is registered\nhelp: register a Hugging Face folder on the Backbones page or with the API (`POST /api/backbones`)")]
    BackboneNotFound { name: String },

    #[error("`{}` is not a Hugging Face model folder: {reason}\nhelp: pick a folder with config.json, *.safetensors and tokenizer.json (or import a .gguf file)", path.display())]
    NotABackbone { path: PathBuf, reason: String },

    #[error("cannot start `{}`: {source}\nhelp: check that the ferrotune binary still exists and is executable", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot signal process {pid} of experiment `{name}`: {source}")]
    Signal {
        name: String,
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

impl From<ferrotune_config::Error> for Error {
    fn from(e: ferrotune_config::Error) -> Self {
        Error::Config(Box::new(e))
    }
}

fn experiment_help(suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!("did you mean `{s}`? `ferrotune experiment list` shows every experiment"),
        None => "`ferrotune experiment list` shows every experiment; queue one with `ferrotune experiment start cfg.yaml`".into(),
    }
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

/// `: it skipped N member(s) whose path leaves the archive (`../x.csv`)`, or nothing.
fn skipped_unsafe(members: &[String]) -> String {
    if members.is_empty() {
        return String::new();
    }
    let names: Vec<String> = members.iter().take(3).map(|m| format!("`{m}`")).collect();
    let more = if members.len() > 3 { ", …" } else { "" };
    format!(
        ": {} member(s) were skipped as unsafe because their paths leave the archive ({}{more})",
        members.len(),
        names.join(", ")
    )
}

fn unsafe_help(members: &[String]) -> &'static str {
    if members.is_empty() {
        ""
    } else {
        "; archive the files with paths inside the archive (`zip data.zip train.csv`, not `../train.csv`)"
    }
}

impl From<ferrotune_export::Error> for Error {
    fn from(e: ferrotune_export::Error) -> Self {
        Error::Export(Box::new(e))
    }
}
