//! Dataset operations: import, merge, delete, list, show and sample. Each builds its result in a hidden
//! temporary folder under `datasets/` and publishes it with renames plus one registry transaction, so a failed
//! operation leaves nothing half-done.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ferrotune_data::import::{
    CanonicalRow, ColumnCounts, Converter, FileSummary, Mapping, Statistics,
};

use crate::dataset::{self, DatasetInfo, SourceFile, Split, SplitInfo, ORIGINAL_DIR};
use crate::error::{io, Error, Result};
use crate::files::{self, Input, TempDir};
use crate::registry::{self, Registry};
use crate::Store;

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The dataset's name (a folder name: letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Training data: a file, a folder of files, or a `.zip` archive.
    pub train: PathBuf,
    /// Validation data, in the same forms.
    pub validation: Option<PathBuf>,
    /// Which columns hold what (empty fields are recognised per file).
    pub mapping: Mapping,
}

/// One split converted into a temporary folder.
struct Converted {
    split: Split,
    inputs: Vec<Input>,
    summaries: Vec<FileSummary>,
    statistics: Statistics,
    rows: u64,
}

impl Store {
    /// Imports a dataset: converts the files into the canonical table(s), computes statistics, keeps the
    /// originals, writes `dataset.json` and registers it.
    pub fn import_dataset(&mut self, options: &ImportOptions) -> Result<DatasetInfo> {
        dataset::check_name(&options.name)?;
        let _shared = self.lock_registry(false)?;
        let root = self.home.datasets();
        let final_dir = root.join(&options.name);
        if final_dir.exists() || self.registry.dataset(&options.name)?.is_some() {
            return Err(Error::DatasetExists {
                name: options.name.clone(),
            });
        }
        let tmp = TempDir::new(&root, &format!("import-{}", options.name))?;
        let train = convert_split(
            tmp.path(),
            Split::Train,
            &[],
            &options.train,
            &options.mapping,
            None,
        )?;
        let validation = match &options.validation {
            Some(path) => Some(convert_split(
                tmp.path(),
                Split::Validation,
                &[],
                path,
                &options.mapping,
                None,
            )?),
            None => None,
        };
        let mut files = keep_originals(tmp.path(), tmp.path(), &train, &options.mapping)?;
        if let Some(v) = &validation {
            files.extend(keep_originals(tmp.path(), tmp.path(), v, &options.mapping)?);
        }
        let _ = std::fs::remove_dir_all(tmp.path().join(UNPACK_DIR));
        let now = dataset::now();
        let info = DatasetInfo {
            name: options.name.clone(),
            version: dataset::METADATA_VERSION,
            format: DatasetInfo::describe(&files),
            files,
            mapping: options.mapping.clone(),
            train: train.into_split_info(),
            validation: validation.map(Converted::into_split_info),
            created: now,
            updated: now,
        };
        info.save(tmp.path())?;
        publish(&mut self.registry, &info, tmp, &final_dir)?;
        Ok(info)
    }

    /// Adds the rows of `file` (a file, folder or zip) to the `split` table of dataset `name`; ids must stay
    /// unique across the old and new rows. The file is kept among the originals and the statistics recomputed.
    pub fn merge_dataset(
        &mut self,
        name: &str,
        file: &Path,
        mapping: &Mapping,
        split: Split,
    ) -> Result<DatasetInfo> {
        dataset::check_name(name)?;
        let _shared = self.lock_registry(false)?;
        let _lock = lock_file(&dataset_lock(&self.home, name))?;
        let dir = self.dataset_dir_checked(name)?;
        let mut info = DatasetInfo::load(&dir)?;
        let old = match split {
            Split::Train => Some(&info.train),
            Split::Validation => info.validation.as_ref(),
        };
        let old_columns = old
            .map(|s| s.statistics.columns.clone())
            .unwrap_or_default();
        let existing: Vec<(PathBuf, bool)> = old
            .map(|s| (dir.join(&s.file), s.statistics.preference.is_some()))
            .into_iter()
            .collect();
        let tmp = TempDir::new(&self.home.datasets(), &format!("merge-{name}"))?;
        let converted = convert_split(
            tmp.path(),
            split,
            existing.as_slice(),
            file,
            mapping,
            Some(old_columns),
        )?;
        let new_files = keep_originals(tmp.path(), &dir, &converted, mapping)?;
        let table = converted.into_split_info();
        info.files.extend(new_files);
        info.format = DatasetInfo::describe(&info.files);
        match split {
            Split::Train => info.train = table,
            Split::Validation => info.validation = Some(table),
        }
        info.updated = dataset::now();
        let staged = tmp.path().join(split.file());
        std::fs::rename(&staged, dir.join(split.file())).map_err(io(&staged))?;
        info.save(&dir)?;
        self.registry
            .write(|tx| registry::put_dataset(tx, &info, &dir))?;
        Ok(info)
    }

    /// Removes dataset `name`: its registry row and its folder (also either one alone).
    pub fn delete_dataset(&mut self, name: &str) -> Result<()> {
        dataset::check_name(name)?;
        let _shared = self.lock_registry(false)?;
        let root = self.home.datasets();
        let dir = root.join(name);
        let _lock = lock_file(&dataset_lock(&self.home, name))?;
        let trash = root.join(format!(".trash-{name}-{}", files::unique()));
        let registry_path = self.registry.path().to_path_buf();
        let not_found = self.not_found(name);
        let moved = self.registry.write(|tx| {
            let had_row = registry::remove_dataset(tx, name, &registry_path)?;
            let had_dir = dir.is_dir();
            if had_dir {
                std::fs::rename(&dir, &trash).map_err(io(&dir))?;
            }
            if !had_row && !had_dir {
                return Err(not_found);
            }
            Ok(had_dir)
        })?;
        if moved {
            std::fs::remove_dir_all(&trash).map_err(io(&trash))?;
        }
        Ok(())
    }

    /// Imports dataset `name` again from its kept originals with another `mapping` (tables, statistics and
    /// `dataset.json` follow). The new mapping is first tried under a temporary name, so a mapping that does not
    /// fit the files leaves the dataset as it was.
    pub fn remap_dataset(&mut self, name: &str, mapping: &Mapping) -> Result<DatasetInfo> {
        self.dataset(name)?;
        let dir = self.dataset_dir(name);
        let staging = TempDir::new(&self.home.datasets(), &format!("remap-{name}"))?;
        let mut splits = Vec::new();
        for split in [Split::Train, Split::Validation] {
            let from = dir.join(ORIGINAL_DIR).join(split.name());
            if !from.is_dir() {
                continue;
            }
            let to = staging.path().join(split.name());
            std::fs::create_dir_all(&to).map_err(io(&to))?;
            for entry in std::fs::read_dir(&from).map_err(io(&from))?.flatten() {
                let target = to.join(entry.file_name());
                std::fs::copy(entry.path(), &target).map_err(io(&target))?;
            }
            splits.push((split, to));
        }
        let options = |name: String| ImportOptions {
            name,
            train: splits
                .iter()
                .find(|(s, _)| *s == Split::Train)
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| dir.join(ORIGINAL_DIR).join(Split::Train.name())),
            validation: splits
                .iter()
                .find(|(s, _)| *s == Split::Validation)
                .map(|(_, p)| p.clone()),
            mapping: mapping.clone(),
        };
        let trial = format!("{name}-remap-{}", files::unique());
        self.import_dataset(&options(trial.clone()))?;
        self.delete_dataset(&trial)?;
        self.delete_dataset(name)?;
        self.import_dataset(&options(name.to_string()))
    }

    /// Every registered dataset, by name.
    pub fn datasets(&self) -> Result<Vec<DatasetInfo>> {
        self.registry.datasets()
    }

    /// The dataset `name` (an error suggests the closest name).
    pub fn dataset(&self, name: &str) -> Result<DatasetInfo> {
        dataset::check_name(name)?;
        self.registry
            .dataset(name)?
            .ok_or_else(|| self.not_found(name))
    }

    /// The folder of dataset `name`.
    pub fn dataset_dir(&self, name: &str) -> PathBuf {
        self.home.datasets().join(name)
    }

    /// The canonical table file of `split`, which an experiment can train on.
    pub fn table_path(&self, name: &str, split: Split) -> Result<PathBuf> {
        let info = self.dataset(name)?;
        let file = match split {
            Split::Train => info.train.file,
            Split::Validation => match info.validation {
                Some(v) => v.file,
                None => return Ok(PathBuf::new()),
            },
        };
        Ok(self.dataset_dir(name).join(file))
    }

    /// The first `n` rows of the `split` table (none when there is no validation table).
    pub fn sample(&self, name: &str, split: Split, n: usize) -> Result<Vec<CanonicalRow>> {
        let path = self.table_path(name, split)?;
        if path.as_os_str().is_empty() {
            return Ok(Vec::new());
        }
        dataset::read_rows(&path, n)
    }

    /// Dataset folders with a `dataset.json` that the registry does not list (after the registry was lost).
    pub fn unindexed_datasets(&self) -> Result<Vec<String>> {
        let known = self.registry.dataset_names()?;
        let mut names: Vec<String> = crate::doctor::dataset_folders(&self.home.datasets())?
            .into_iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| !known.contains(n))
            .collect();
        names.sort();
        Ok(names)
    }

    fn dataset_dir_checked(&self, name: &str) -> Result<PathBuf> {
        let dir = self.dataset_dir(name);
        if !dir.join(dataset::METADATA_FILE).is_file() {
            return Err(self.not_found(name));
        }
        Ok(dir)
    }

    fn not_found(&self, name: &str) -> Error {
        let names = self.registry.dataset_names().unwrap_or_default();
        let suggestion = ferrotune_config::did_you_mean(name, names.iter().map(String::as_str))
            .map(str::to_string);
        Error::DatasetNotFound {
            name: name.to_string(),
            suggestion,
        }
    }
}

impl Converted {
    fn into_split_info(self) -> SplitInfo {
        SplitInfo {
            file: self.split.file().into(),
            rows: self.rows,
            statistics: self.statistics,
        }
    }
}

/// Where zip members are unpacked inside a temporary folder.
const UNPACK_DIR: &str = "unpack";

/// Converts `existing` canonical tables (read back as they are; `true`: a table of preference pairs) then the
/// files of `input` into `tmp/<split file>`; `old_columns` are column counts carried over from earlier imports.
// The sink's error type is the data crate's (unboxed) error, as its converter dictates.
#[allow(clippy::result_large_err)]
fn convert_split(
    tmp: &Path,
    split: Split,
    existing: &[(PathBuf, bool)],
    input: &Path,
    mapping: &Mapping,
    old_columns: Option<std::collections::BTreeMap<String, ColumnCounts>>,
) -> Result<Converted> {
    let inputs = files::gather(input, &tmp.join(UNPACK_DIR).join(split.name()))?;
    let out_path = tmp.join(split.file());
    let mut out = BufWriter::new(File::create(&out_path).map_err(io(&out_path))?);
    let mut converter = Converter::new();
    let mut sink = |row: &CanonicalRow| -> ferrotune_data::Result<()> {
        serde_json::to_writer(&mut out, &row.record())
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|source| ferrotune_data::Error::Io {
                path: out_path.clone(),
                source,
            })
    };
    for (table, pairs) in existing {
        let canonical = if *pairs {
            Mapping::canonical_preference()
        } else {
            Mapping::canonical()
        };
        converter.add_file(table, &canonical, &mut sink)?;
    }
    let mut summaries = Vec::new();
    for input in &inputs {
        let summary = converter
            .add_file(&input.path, mapping, &mut sink)
            .map_err(|e| match &input.archive {
                Some((archive, member)) => Error::InArchive {
                    archive: archive.clone(),
                    member: member.clone(),
                    source: Box::new(e),
                },
                None => Error::from(e),
            })?;
        summaries.push(summary);
    }
    out.into_inner()
        .map_err(|e| io(&out_path)(e.into_error()))?
        .sync_all()
        .map_err(io(&out_path))?;
    let rows = converter.rows();
    let mut statistics = converter.finish()?;
    statistics.columns = old_columns.unwrap_or_default();
    for summary in &summaries {
        for (name, counts) in &summary.columns {
            statistics
                .columns
                .entry(name.clone())
                .or_default()
                .add(counts);
        }
    }
    Ok(Converted {
        split,
        inputs,
        summaries,
        statistics,
        rows,
    })
}

/// Puts the imported files under `dataset_dir/original/<split>/` (zip members are moved out of `tmp`, user
/// files copied) and describes them.
fn keep_originals(
    tmp: &Path,
    dataset_dir: &Path,
    split: &Converted,
    mapping: &Mapping,
) -> Result<Vec<SourceFile>> {
    let dest = dataset_dir.join(ORIGINAL_DIR).join(split.split.name());
    let mut out = Vec::new();
    for (input, summary) in split.inputs.iter().zip(&split.summaries) {
        let ours = input.path.starts_with(tmp);
        let placed = files::place(&input.path, &dest, ours)?;
        out.push(SourceFile {
            split: split.split,
            source: input.source.clone(),
            original: placed
                .strip_prefix(dataset_dir)
                .unwrap_or(&placed)
                .to_path_buf(),
            format: summary.format.clone(),
            shape: summary.shape,
            records: summary.records,
            rows: summary.rows,
            mapping: mapping.clone(),
        });
    }
    Ok(out)
}

/// Registers `info` and renames `tmp` to `final_dir` in one transaction; on any failure the folder goes back to
/// `tmp` (removed with it) and the row is not committed.
fn publish(
    registry: &mut Registry,
    info: &DatasetInfo,
    tmp: TempDir,
    final_dir: &Path,
) -> Result<()> {
    let registry_path = registry.path().to_path_buf();
    let mut renamed = false;
    let result = registry.write(|tx| {
        if registry::has_dataset(tx, &info.name, &registry_path)? {
            return Err(Error::DatasetExists {
                name: info.name.clone(),
            });
        }
        registry::put_dataset(tx, info, final_dir)?;
        std::fs::rename(tmp.path(), final_dir).map_err(|e| {
            if final_dir.exists() {
                Error::DatasetExists {
                    name: info.name.clone(),
                }
            } else {
                io(final_dir)(e)
            }
        })?;
        renamed = true;
        Ok(())
    });
    match result {
        Ok(()) => {
            tmp.keep();
            Ok(())
        }
        Err(e) => {
            if renamed {
                let _ = std::fs::rename(final_dir, tmp.path());
            }
            Err(e)
        }
    }
}

/// The lock file of dataset `name`: `datasets/.locks/<name>.lock` (kept, so every process locks the same file).
fn dataset_lock(home: &ferrotune_home::Home, name: &str) -> PathBuf {
    home.datasets().join(".locks").join(format!("{name}.lock"))
}

/// An exclusive lock on `path` (created), held while the file lives.
pub(crate) fn lock_file(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    file.lock().map_err(io(path))?;
    Ok(file)
}
