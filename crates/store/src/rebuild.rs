//! Experiment rows rebuilt from their folders (part of `doctor --rebuild-index`): `cfg.yaml` gives the settings,
//! `status.json` the status (a `running` one whose process is gone becomes `failed`, as crash detection does),
//! `metrics.jsonl` the progress and metric series.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use ferrotune_config::Experiment;
use ferrotune_home::Home;
use rusqlite::Transaction;

use crate::doctor::{is_hidden, RebuildReport};
use crate::error::{io, Result};
use crate::experiment::blank;
use crate::experiment::{self, check_name, ExperimentInfo, Status};
use crate::experiments::device_of;
use crate::process::ProcessId;
use crate::tracking::{self, read_status_file, Progress, Tracker};

/// Every experiment folder of `home` as a row with its progress; removes `experiments/.trash-*` leftovers and
/// notes unusable folders in `report`.
pub(crate) fn experiments(
    home: &Home,
    report: &mut RebuildReport,
) -> Result<Vec<(ExperimentInfo, Progress)>> {
    let root = home.experiments();
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&root).map_err(io(&root))? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if entry.file_name().to_string_lossy().starts_with(".trash-") {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
            report.removed.push(path);
        } else if !is_hidden(&path) {
            dirs.push(path);
        }
    }
    dirs.sort();
    let mut out = Vec::new();
    for dir in dirs {
        match from_folder(home, &dir) {
            Ok(Some(run)) => out.push(run),
            Ok(None) => {}
            Err(reason) => report.skipped.push((dir, reason)),
        }
    }
    Ok(out)
}

fn modified(path: &Path) -> Option<u64> {
    let time = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// The row of one folder; `None` for a folder without `cfg.yaml`; `Err` with the reason when it is unusable.
fn from_folder(
    home: &Home,
    dir: &Path,
) -> std::result::Result<Option<(ExperimentInfo, Progress)>, String> {
    let cfg_path = ferrotune_home::RunDir::new(dir).config();
    if !cfg_path.is_file() {
        return Ok(None);
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    check_name(&name).map_err(|e| e.to_string())?;
    let config = std::fs::read_to_string(&cfg_path).map_err(|e| e.to_string())?;
    let cfg = Experiment::from_yaml_str(&config, &format!("`{}`", cfg_path.display()))
        .map_err(|e| e.to_string())?;
    if cfg.experiment_name != name {
        return Err(format!(
            "its cfg.yaml names `{}`; rename the folder to match",
            cfg.experiment_name
        ));
    }
    let mut tracker = Tracker::new(dir);
    tracker.read_new().map_err(|e| e.to_string())?;
    let progress = tracker.progress().clone();
    let created = modified(&cfg_path).unwrap_or_else(crate::dataset::now);
    let datasets = home.datasets();
    let dataset = Path::new(&cfg.dataset.train_dataframe)
        .strip_prefix(&datasets)
        .ok()
        .and_then(|rest| rest.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let mut info = ExperimentInfo {
        dataset,
        device: device_of(&cfg),
        output_dir: dir.to_path_buf(),
        created,
        updated: crate::dataset::now(),
        config,
        status: Status::Stopped,
        ..blank(&name)
    };
    match read_status_file(dir) {
        Some((status, message)) if status.is_done() => {
            info.status = status;
            info.message = (!message.is_empty()).then_some(message);
            info.finished = modified(&ferrotune_home::RunDir::new(dir).status());
        }
        Some(_) => match live_process(dir) {
            Some(process) => {
                info.status = Status::Running;
                info.pid = Some(process.pid);
                info.pid_start = process.start;
            }
            None => {
                let (status, message) = tracking::outcome(&info, None);
                info.status = status;
                info.message = Some(message);
            }
        },
        None => {
            info.message = Some(format!(
                "registered again from its folder before it ran; run it with `ferrotune experiment restart {name}`"
            ));
        }
    }
    Ok(Some((info, progress)))
}

/// The row of the experiment folder `dir` (which must have a `cfg.yaml` naming it).
pub(crate) fn row_of_folder(home: &Home, dir: &Path) -> Result<(ExperimentInfo, Progress)> {
    match from_folder(home, dir) {
        Ok(Some(run)) => Ok(run),
        Ok(None) => Err(crate::Error::Corrupt {
            path: dir.to_path_buf(),
            message: "has no cfg.yaml".into(),
        }),
        Err(message) => Err(crate::Error::Corrupt {
            path: dir.to_path_buf(),
            message,
        }),
    }
}

/// The training process of the run in `dir`, if the pid in its `status.json` still runs `train` on that folder.
fn live_process(dir: &Path) -> Option<ProcessId> {
    let text = std::fs::read_to_string(ferrotune_home::RunDir::new(dir).status()).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pid = u32::try_from(value.get("pid")?.as_u64()?).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let needle = dir.as_os_str().as_encoded_bytes();
    let runs_here = cmdline.windows(needle.len()).any(|w| w == needle);
    let process = ProcessId::of(pid);
    (runs_here && process.is_alive()).then_some(process)
}

/// Inserts the rebuilt rows and their metrics.
pub(crate) fn insert(
    tx: &Transaction<'_>,
    registry: &Path,
    runs: &[(ExperimentInfo, Progress)],
) -> Result<()> {
    for (info, progress) in runs {
        let id = experiment::insert(tx, registry, info)?;
        let mut progress = progress.clone();
        tracking::write_progress(tx, registry, id, &mut progress)?;
    }
    Ok(())
}

impl crate::Store {
    /// Experiment folders with a `cfg.yaml` that the registry does not list (after the registry was lost).
    pub fn unindexed_experiments(&self) -> Result<Vec<String>> {
        let root = self.home().experiments();
        if !root.is_dir() {
            return Ok(Vec::new());
        }
        let known: Vec<PathBuf> = self
            .registry()
            .experiments()?
            .into_iter()
            .map(|e| e.output_dir)
            .collect();
        let mut names: Vec<String> = std::fs::read_dir(&root)
            .map_err(io(&root))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !is_hidden(p)
                    && ferrotune_home::RunDir::new(p).config().is_file()
                    && !known.contains(p)
            })
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        Ok(names)
    }
}
