//! `doctor --rebuild-index`: the registry rebuilt from the files. A fresh registry is built aside from every
//! `datasets/*/dataset.json`, then the old `registry.sqlite` (with its `-wal` and `-shm`) is deleted and the new
//! one renamed into place, all under the exclusive registry lock, so no import or delete runs meanwhile.
//! Experiments are registered again from every `experiments/*/` folder with a `cfg.yaml` (status from `status.json`,
//! progress and metrics from `metrics.jsonl`). Leftover temporary folders of crashed operations
//! (`datasets/.import-*`, `.merge-*`, `.trash-*`, `experiments/.trash-*`) are removed.

use std::path::{Path, PathBuf};

use ferrotune_home::Home;

use crate::dataset::{DatasetInfo, METADATA_FILE};
use crate::error::{io, Result};
use crate::registry::{self, Registry};

/// What a rebuild found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RebuildReport {
    /// Datasets registered again, by name.
    pub datasets: Vec<String>,
    /// Experiments registered again, by name.
    pub experiments: Vec<String>,
    /// Folders whose metadata could not be used, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Temporary folders of interrupted operations that were removed.
    pub removed: Vec<PathBuf>,
}

/// Non-hidden folders of `datasets` that hold a `dataset.json`, sorted.
pub(crate) fn dataset_folders(datasets: &Path) -> Result<Vec<PathBuf>> {
    if !datasets.is_dir() {
        return Ok(Vec::new());
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(datasets)
        .map_err(io(datasets))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !is_hidden(p) && p.join(METADATA_FILE).is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

pub(crate) fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Deletes and recreates `registry.sqlite` from the dataset folders of `home`.
pub fn rebuild_index(home: &Home) -> Result<RebuildReport> {
    std::fs::create_dir_all(home.root()).map_err(io(home.root()))?;
    let _exclusive = crate::lock_registry(home, true)?;
    let datasets = home.datasets();
    let mut report = RebuildReport::default();
    if datasets.is_dir() {
        for entry in std::fs::read_dir(&datasets).map_err(io(&datasets))? {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let temporary = [".import-", ".merge-", ".trash-"]
                .iter()
                .any(|p| name.starts_with(p));
            if temporary && path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
                report.removed.push(path);
            }
        }
    }
    let mut found = Vec::new();
    for dir in dataset_folders(&datasets)? {
        match DatasetInfo::load(&dir) {
            Ok(info) if dir.file_name().is_some_and(|n| *n == *info.name) => {
                found.push((dir, info))
            }
            Ok(info) => report.skipped.push((
                dir,
                format!(
                    "its dataset.json names `{}`; rename the folder to match",
                    info.name
                ),
            )),
            Err(e) => report.skipped.push((dir, e.to_string())),
        }
    }
    let runs = crate::rebuild::experiments(home, &mut report)?;
    let target = home.registry();
    let aside = crate::files::temp_sibling(&target);
    let built = (|| {
        let mut fresh = Registry::open_with(&aside, false)?;
        fresh.write(|tx| {
            for (dir, info) in &found {
                registry::put_dataset(tx, info, dir)?;
            }
            crate::rebuild::insert(tx, &aside, &runs)
        })
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_file(&aside);
        return Err(e);
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let old = PathBuf::from(format!("{}{suffix}", target.display()));
        match std::fs::remove_file(&old) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&old)(e)),
        }
    }
    std::fs::rename(&aside, &target).map_err(io(&target))?;
    // Back to WAL for everyday use.
    drop(Registry::open(&target)?);
    report.datasets = found.into_iter().map(|(_, info)| info.name).collect();
    report.experiments = runs.into_iter().map(|(info, _)| info.name).collect();
    Ok(report)
}
