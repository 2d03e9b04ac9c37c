//! Reading what a run leaves in its folder, for the studio and the CLI (neither opens a run file itself): its
//! events, the tail of its log, the first batch, the validation predictions, followers of the live files, and
//! the downloads ([`Artifact`]).

use std::io::Write;
use std::path::Path;

use ferrotune_home::{Event, LineFollower, RunDir};

use crate::error::{io, Error, Result};
use crate::Store;

/// What can be downloaded from an experiment: one list shared by the CLI, the store and the studio's Downloads
/// tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Artifact {
    /// The resolved settings (`cfg.yaml`).
    Config,
    /// The human-readable log.
    Logs,
    /// The final evaluation's validation predictions (CSV).
    Predictions,
    /// The LoRA adapter in PEFT's format, as a zip of its folder.
    Adapter,
}

impl Artifact {
    /// Every artifact, in the order the studio lists them.
    pub const ALL: [Artifact; 4] = [
        Artifact::Config,
        Artifact::Logs,
        Artifact::Predictions,
        Artifact::Adapter,
    ];

    /// Its name in URLs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Artifact::Config => "config",
            Artifact::Logs => "logs",
            Artifact::Predictions => "predictions",
            Artifact::Adapter => "adapter",
        }
    }

    /// What it is, in words.
    pub fn title(self) -> &'static str {
        match self {
            Artifact::Config => "Experiment config (YAML)",
            Artifact::Logs => "Logs",
            Artifact::Predictions => "Validation predictions (CSV)",
            Artifact::Adapter => "LoRA adapter (PEFT, zip)",
        }
    }

    /// The artifact named `name`; an unknown name lists the known ones.
    pub fn parse(name: &str) -> Result<Artifact> {
        Artifact::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| Error::UnknownArtifact {
                name: name.into(),
                known: Artifact::ALL.map(Artifact::name).join(", "),
            })
    }

    /// The MIME type it is served as.
    pub fn content_type(self) -> &'static str {
        match self {
            Artifact::Config => "text/yaml; charset=utf-8",
            Artifact::Logs => "text/plain; charset=utf-8",
            Artifact::Predictions => "text/csv; charset=utf-8",
            Artifact::Adapter => "application/zip",
        }
    }

    /// The file name it is saved as, for experiment `experiment`.
    pub fn file_name(self, experiment: &str) -> String {
        match self {
            Artifact::Config => format!("{experiment}.yaml"),
            Artifact::Logs => format!("{experiment}-logs.log"),
            Artifact::Predictions => format!("{experiment}-validation_predictions.csv"),
            Artifact::Adapter => format!("{experiment}-adapter.zip"),
        }
    }

    /// Whether the run in `run` has it yet.
    pub fn exists(self, run: &RunDir) -> bool {
        match self {
            Artifact::Config => run.config().is_file(),
            Artifact::Logs => run.log().is_file(),
            Artifact::Predictions => run.predictions().is_file(),
            Artifact::Adapter => run.has_adapter(),
        }
    }

    /// What it is, in a sentence ("experiment `x` has no … yet").
    fn noun(self) -> &'static str {
        match self {
            Artifact::Config => "config",
            Artifact::Logs => "log",
            Artifact::Predictions => "validation predictions",
            Artifact::Adapter => "adapter",
        }
    }

    /// When a run writes it (for the "not yet" message).
    fn written_when(self) -> &'static str {
        match self {
            Artifact::Config => "written when the experiment is queued",
            Artifact::Logs => "written when the run starts",
            Artifact::Predictions => "written by the final evaluation",
            Artifact::Adapter => "saved when training ends",
        }
    }
}

impl std::fmt::Display for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A downloadable artifact's bytes and how to serve them.
#[derive(Debug, Clone)]
pub struct ArtifactFile {
    pub artifact: Artifact,
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// The validation predictions, as a table of text.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Predictions {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Follows a run's live files: the events appended to `metrics.jsonl` and the lines appended to `logs.log`.
#[derive(Debug, Clone)]
pub struct RunFollower {
    metrics: LineFollower,
    log: LineFollower,
}

impl RunFollower {
    /// A follower from the start of both files.
    pub fn new(run: &RunDir) -> RunFollower {
        RunFollower {
            metrics: LineFollower::new(run.metrics()),
            log: LineFollower::new(run.log()),
        }
    }

    /// The events and log lines added since the last call (half-written lines wait for the next one).
    pub fn read(&mut self) -> (Vec<Event>, Vec<String>) {
        let events = self
            .metrics
            .read_lines()
            .iter()
            .filter_map(|l| Event::from_line(l))
            .collect();
        (events, self.log.read_lines())
    }
}

impl Store {
    /// The output folder of experiment `name`.
    pub fn run_dir(&mut self, name: &str) -> Result<RunDir> {
        Ok(RunDir::new(self.experiment(name)?.output_dir))
    }

    /// A follower of the live files of `name`'s run, from their start.
    pub fn follow_run(&mut self, name: &str) -> Result<RunFollower> {
        Ok(RunFollower::new(&self.run_dir(name)?))
    }

    /// Every event the run of `name` has written so far.
    pub fn run_events(&mut self, name: &str) -> Result<Vec<Event>> {
        Ok(self.run_dir(name)?.read_events())
    }

    /// Every download of experiment `name`, with whether the run has written it yet.
    pub fn artifacts(&mut self, name: &str) -> Result<Vec<(Artifact, bool)>> {
        let run = self.run_dir(name)?;
        Ok(Artifact::ALL.map(|a| (a, a.exists(&run))).to_vec())
    }

    /// The last `n` lines of the run's log.
    pub fn run_log_tail(&mut self, name: &str, n: usize) -> Result<Vec<String>> {
        Ok(crate::tracking::last_lines(&self.run_dir(name)?.log(), n))
    }

    /// The run's first training batch, decoded (`first_batch.json`).
    pub fn first_batch(&mut self, name: &str) -> Result<serde_json::Value> {
        let path = self.run_dir(name)?.first_batch();
        let text = std::fs::read_to_string(&path).map_err(|_| Error::RunFileMissing {
            name: name.into(),
            what: "first batch",
            when: "written when training starts",
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Corrupt {
            path,
            message: e.to_string(),
        })
    }

    /// The final evaluation's validation predictions.
    pub fn predictions(&mut self, name: &str) -> Result<Predictions> {
        let run = self.run_dir(name)?;
        if !Artifact::Predictions.exists(&run) {
            return Err(not_yet(name, Artifact::Predictions));
        }
        let path = run.predictions();
        let table = ferrotune_data::read_table(&path).map_err(|e| Error::Corrupt {
            path,
            message: e.to_string(),
        })?;
        let rows = (0..table.len())
            .map(|r| {
                (0..table.columns.len())
                    .map(|c| table.text(r, c).to_string())
                    .collect()
            })
            .collect();
        Ok(Predictions {
            columns: table.columns,
            rows,
        })
    }

    /// The bytes of `artifact` of experiment `name` (the adapter zipped in memory: adapters are megabytes).
    pub fn artifact(&mut self, name: &str, artifact: Artifact) -> Result<ArtifactFile> {
        let info = self.experiment(name)?;
        let run = RunDir::new(&info.output_dir);
        if !Artifact::Config.eq(&artifact) && !artifact.exists(&run) {
            return Err(not_yet(name, artifact));
        }
        let read = |path: &Path| std::fs::read(path).map_err(io(path));
        let bytes = match artifact {
            Artifact::Config => info.config.clone().into_bytes(),
            Artifact::Logs => read(&run.log())?,
            Artifact::Predictions => read(&run.predictions())?,
            Artifact::Adapter => zip_folder(&run.adapter(), "adapter")?,
        };
        Ok(ArtifactFile {
            artifact,
            file_name: artifact.file_name(name),
            bytes,
        })
    }
}

fn not_yet(name: &str, artifact: Artifact) -> Error {
    Error::RunFileMissing {
        name: name.into(),
        what: artifact.noun(),
        when: artifact.written_when(),
    }
}

/// The files of `dir` (one level) as a zip whose entries are under `prefix/`.
fn zip_folder(dir: &Path, prefix: &str) -> Result<Vec<u8>> {
    zip_with(dir, prefix, zip::CompressionMethod::Deflated)
}

/// The files of `dir` as a zip without compression (model weights hardly compress), under `prefix/`.
pub(crate) fn zip_folder_stored(dir: &Path, prefix: &str) -> Result<Vec<u8>> {
    zip_with(dir, prefix, zip::CompressionMethod::Stored)
}

fn zip_with(dir: &Path, prefix: &str, method: zip::CompressionMethod) -> Result<Vec<u8>> {
    let zip_err = |e: zip::result::ZipError| Error::Corrupt {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(method)
        .large_file(true);
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .filter(|e| e.path().is_file())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        zip.start_file(
            format!("{prefix}/{}", e.file_name().to_string_lossy()),
            options,
        )
        .map_err(zip_err)?;
        zip.write_all(&bytes).map_err(io(&path))?;
    }
    zip.finish().map_err(zip_err)?;
    Ok(out.into_inner())
}
