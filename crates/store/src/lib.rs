//! # ferrotune-store
//!
//! The studio's state: the SQLite registry that indexes `FERROTUNE_HOME` (its layout is `ferrotune-home`'s; see
//! `docs/home.md`), the readers of the run folders for the CLI and the studio, the downloads ([`Artifact`]),
//! dataset import with statistics, and the experiment queue with its runner. The CLI and the server call
//! these functions; neither writes the registry or the `datasets/` and `experiments/` folders itself.
//!
//! *Owns*: `registry.sqlite` (schema, migrations, every write), `datasets/` (one folder per dataset whose
//! `dataset.json` is the source of truth; the canonical `train.jsonl`/`validation.jsonl`; the originals),
//! `experiments/` (one output folder per experiment: its `cfg.yaml`, and whatever the training process writes
//! there), the experiment lifecycle (queued → running → finished | failed | stopped), the runner process and its
//! `runner.lock`, and crash detection (a pid plus its start time). *Must not touch*: tensors, model weights (a backbone
//! folder is checked with `ferrotune_model::check_folder`, headers only), training internals (a run is a child `ferrotune train` process; only its files are read), anything network; `assets/`
//! and `backbones/` belong to `ferrotune-home` and `ferrotune-model`. It never prints.
//!
//! Layout of the home:
//! ```text
//! registry.sqlite        datasets, experiments, metrics (WAL; rebuilt from the folders by rebuild_index)
//! registry.lock          shared by imports/merges/deletes and experiment changes, exclusive for rebuild_index
//! runner.lock            held (flock) by the one runner; holds its pid and start time
//! runner.log             the runner's stderr
//! datasets/<name>/       dataset.json, train.jsonl, [validation.jsonl], original/<split>/…
//! experiments/<name>/    cfg.yaml, status.json, logs.log, metrics.jsonl, stderr.log, checkpoint/, adapter/
//! assets/, backbones/    demo archives, imported GGUF backbones
//! ```
//!
//! Brief overview:
//! - [`Store`] opens the home and its [`Registry`]; [`Store::import_dataset`] ([`ImportOptions`]),
//!   [`Store::merge_dataset`], [`Store::remap_dataset`], [`Store::delete_dataset`], [`Store::datasets`],
//!   [`Store::sample`].
//! - Backbones: [`Store::backbones`], [`Store::register_backbone`], [`Store::unregister_backbone`]
//!   (`backbones.json`: names for Hugging Face folders).
//! - Conversion and statistics are pure data logic in `ferrotune_data::import`; this crate adds files, zip
//!   archives, atomic publication and the registry.
//! - Experiments: [`Store::plan_experiments`] ([`StartOptions`]; grids via `grid`) then
//!   [`Store::queue_experiments`]; [`ensure_runner`] starts [`runner::run`] in its own process;
//!   [`Store::stop_experiment`], [`Store::resume_experiment`], [`Store::restart_experiment`],
//!   [`Store::delete_experiment`], [`Store::rename_experiment`], [`Store::compare_experiments`]. Readers
//!   ([`Store::experiments`], [`Store::experiment`]) first run [`tracking::reconcile`].
//! - [`run_health`]: run folders whose process died, and what interrupted writes left (`doctor`).
//! - [`rebuild_index`] recreates the registry from the `dataset.json` files and the experiment folders.
//!
//! Start reading at [`Store`], [`registry::MIGRATIONS`] and [`runner`].

mod backbones;
pub mod dataset;
mod datasets;
mod doctor;
pub mod error;
pub mod experiment;
mod experiments;
mod exports;
mod files;
pub mod grid;
mod h2o;
mod preview;
pub mod process;
mod rebuild;
pub mod registry;
pub mod run_health;
pub mod runner;
mod runs;
pub mod tracking;

use std::fs::File;

pub use backbones::{check_backbone_folder, check_backbone_name, BackboneEntry};
pub use dataset::{format_utc, DatasetInfo, SourceFile, Split, SplitInfo};
pub use datasets::ImportOptions;
pub use doctor::{rebuild_index, RebuildReport};
pub use error::{Error, Result};
pub use experiment::{ExperimentInfo, Status};
pub use experiments::{
    device_of, Comparison, ExperimentSource, Plan, Planned, Review, StartOptions, Stopped,
};
pub use exports::{ExportDownload, ExportRecord, ExportRequest, PlannedExport};
pub use ferrotune_data::import::{
    CanonicalRow, ColumnCounts, Histogram, Mapping, Shape, Statistics,
};
pub use ferrotune_export::{ExportDtype, ExportFormat, GgufType};
pub use ferrotune_home::Home;
pub use preview::{Preview, PREVIEW_CHARS};
pub use process::ensure_runner;
pub use registry::Registry;
pub use runs::{Artifact, ArtifactFile, Predictions, RunFollower};

/// The home and its open registry.
pub struct Store {
    home: Home,
    registry: Registry,
    /// The `ferrotune` binary a runner is started with (see [`Store::with_runner`]).
    runner_exe: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens the home at `home` (creating `datasets/` and the registry when needed).
    pub fn open(home: Home) -> Result<Store> {
        let datasets = home.datasets();
        std::fs::create_dir_all(&datasets).map_err(error::io(&datasets))?;
        let registry = {
            let _shared = lock_registry(&home, false)?;
            Registry::open(&home.registry())?
        };
        Ok(Store {
            home,
            registry,
            runner_exe: None,
        })
    }

    /// Supervises the queue with `exe` (the `ferrotune` binary): from now on every look at the experiments
    /// ([`Store::experiments`], [`Store::experiment`]) and every queueing starts a runner when something is queued
    /// and none runs — a runner killed with `kill -9` is replaced by the next reader, in the CLI and the studio
    /// alike.
    pub fn with_runner(mut self, exe: impl Into<std::path::PathBuf>) -> Store {
        self.runner_exe = Some(exe.into());
        self
    }

    /// Starts a runner (with [`Store::with_runner`]'s binary) when an experiment is queued and no runner serves
    /// the home; whether one was started. Without a binary it does nothing.
    pub fn supervise(&self) -> Result<bool> {
        let Some(exe) = &self.runner_exe else {
            return Ok(false);
        };
        let queued = !self
            .registry
            .experiments_with(experiment::Status::Queued)?
            .is_empty();
        if !queued {
            return Ok(false);
        }
        process::ensure_runner(&self.home, exe)
    }

    /// The home given by the environment (`FERROTUNE_HOME`, …).
    pub fn from_env() -> Result<Store> {
        Self::open(Home::from_env())
    }

    /// The home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn lock_registry(&self, exclusive: bool) -> Result<File> {
        lock_registry(&self.home, exclusive)
    }
}

/// The registry lock (`registry.lock`): shared for operations that publish files and rows, exclusive while the
/// registry is rebuilt.
fn lock_registry(home: &Home, exclusive: bool) -> Result<File> {
    let path = home.root().join("registry.lock");
    std::fs::create_dir_all(home.root()).map_err(error::io(home.root()))?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(error::io(&path))?;
    if exclusive {
        file.lock()
    } else {
        file.lock_shared()
    }
    .map_err(error::io(&path))?;
    Ok(file)
}
