//! Errors of an export: each a first line naming the thing, then `help:` with the fix.

use std::path::PathBuf;

/// What can go wrong exporting a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{}` is not a run folder: it has no `cfg.yaml`\nhelp: pass an experiment name from `ferrotune experiment list`, or the output folder of a run (the one holding cfg.yaml)", path.display())]
    NotARun { path: PathBuf },

    #[error("run `{}` is still {status}; exporting it now would take weights that are about to change\nhelp: wait for it to finish (`ferrotune experiment show NAME`), or stop it first (`ferrotune experiment stop NAME`) and export what it saved", path.display())]
    StillRunning { path: PathBuf, status: &'static str },

    #[error("run `{}` has not saved trained weights yet (no `adapter/` or `model/`)\nhelp: a run saves them at its first evaluation and at the end; let it train that far, or start it again if it failed before", path.display())]
    NoTrainedWeights { path: PathBuf },

    #[error("the backbone `{}` of run `{}` is gone\nhelp: put the backbone folder back at that path (the merge needs its weights), or edit `llm_backbone` in the run's cfg.yaml to where it is now", backbone.display(), run.display())]
    BackboneGone { run: PathBuf, backbone: PathBuf },

    #[error("output folder `{}` already exists and is not empty\nhelp: choose a new folder for --out, or delete this one first", path.display())]
    OutputExists { path: PathBuf },

    #[error("not enough free space for the export in `{}`: it needs about {needed_mb} MB, {available_mb} MB are free\nhelp: free some space, or export to another disk (--out), or pick a smaller type (--dtype bfloat16, --gguf-type q4_k_m)", path.display())]
    NotEnoughSpace {
        path: PathBuf,
        needed_mb: u64,
        available_mb: u64,
    },

    #[error("the chat template is not one the Modelfile can translate: `{start}`\nhelp: known are ChatML, Llama 3, Llama 2, Mistral [INST], Zephyr and Ferrotune's marker templates; pass --no-modelfile to write the GGUF alone")]
    UnknownTemplate { start: String },

    #[error("{what} cannot be exported as {format}\nhelp: {help}")]
    Unsupported {
        what: String,
        format: &'static str,
        help: &'static str,
    },

    #[error("cannot write `{}`: {source}\nhelp: check that the folder is writable and the disk has space", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("the run's settings cannot be read: {0}")]
    Config(String),

    #[error(transparent)]
    Model(#[from] ferrotune_model::Error),

    #[error(transparent)]
    Gguf(#[from] ferrotune_model::gguf::GgufError),

    #[error(transparent)]
    Train(#[from] ferrotune_train::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// An I/O error on `path`.
pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
