//! A dataset's metadata (`datasets/<name>/dataset.json`, the source of truth the registry indexes) and the
//! rules for names.

use std::path::{Path, PathBuf};

use ferrotune_data::import::{
    CanonicalRow, Mapping, Shape, Statistics, CANONICAL_COLUMNS, PREFERENCE_COLUMNS,
};
use serde::{Deserialize, Serialize};

use crate::error::{io, Error, Result};

/// Version of the `dataset.json` layout.
pub const METADATA_VERSION: u32 = 1;
/// The metadata file in a dataset folder.
pub const METADATA_FILE: &str = "dataset.json";
/// The canonical training table in a dataset folder.
pub const TRAIN_FILE: &str = "train.jsonl";
/// The canonical validation table in a dataset folder.
pub const VALIDATION_FILE: &str = "validation.jsonl";
/// The folder of the imported files, as given.
pub const ORIGINAL_DIR: &str = "original";

/// Which canonical table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
}

impl Split {
    /// `train` or `validation`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
        }
    }

    /// The canonical table's file name.
    pub fn file(self) -> &'static str {
        match self {
            Split::Train => TRAIN_FILE,
            Split::Validation => VALIDATION_FILE,
        }
    }
}

/// One imported file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFile {
    pub split: Split,
    /// Where the user's file was (for zip members: `archive.zip!member`).
    pub source: String,
    /// Its copy, relative to the dataset folder.
    pub original: PathBuf,
    /// `csv`, `parquet`, `json` or `jsonl`.
    pub format: String,
    pub shape: Shape,
    /// Records in the file, and canonical rows made from them.
    pub records: u64,
    pub rows: u64,
    /// The mapping it was imported with (a merge may use another than the import).
    #[serde(default)]
    pub mapping: Mapping,
}

/// One canonical table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// The file, relative to the dataset folder.
    pub file: PathBuf,
    pub rows: u64,
    pub statistics: Statistics,
}

/// Everything known about a dataset: `dataset.json`, and one registry row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub name: String,
    /// [`METADATA_VERSION`].
    pub version: u32,
    /// The layouts and file formats, e.g. `alpaca (json)` or `preference (llamafactory) (json)`.
    pub format: String,
    pub files: Vec<SourceFile>,
    /// The mapping given at import (empty fields were recognised per file).
    pub mapping: Mapping,
    pub train: SplitInfo,
    pub validation: Option<SplitInfo>,
    /// Unix seconds.
    pub created: u64,
    pub updated: u64,
}

impl DatasetInfo {
    /// Reads `dir/dataset.json`.
    pub fn load(dir: &Path) -> Result<DatasetInfo> {
        let path = dir.join(METADATA_FILE);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let info: DatasetInfo = serde_json::from_str(&text).map_err(|e| Error::BadMetadata {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if info.version > METADATA_VERSION {
            return Err(Error::BadMetadata {
                path,
                message: format!(
                    "version {} is newer than this ferrotune knows ({METADATA_VERSION}); upgrade ferrotune",
                    info.version
                ),
            });
        }
        Ok(info)
    }

    /// Writes `dir/dataset.json` atomically.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::BadMetadata {
            path: dir.join(METADATA_FILE),
            message: e.to_string(),
        })?;
        crate::files::write_atomically(&dir.join(METADATA_FILE), text.as_bytes())
    }

    /// Whether its tables hold preference pairs (columns [`PREFERENCE_COLUMNS`]).
    pub fn is_preference(&self) -> bool {
        self.train.statistics.preference.is_some()
    }

    /// The canonical tables' answer column: `answer`, or `chosen_response` for preference pairs.
    pub fn answer_column(&self) -> &'static str {
        if self.is_preference() {
            PREFERENCE_COLUMNS[4]
        } else {
            CANONICAL_COLUMNS[4]
        }
    }

    /// The canonical tables' rejected answer column (`rejected_response`), for preference pairs.
    pub fn rejected_answer_column(&self) -> Option<&'static str> {
        self.is_preference().then_some(PREFERENCE_COLUMNS[5])
    }

    /// The summary of the layouts and formats of `files`, e.g. `alpaca (json)`.
    pub(crate) fn describe(files: &[SourceFile]) -> String {
        let mut kinds: Vec<String> = Vec::new();
        for f in files {
            let kind = format!("{} ({})", f.shape.label(), f.format);
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds.join(", ")
    }
}

/// Checks a dataset name: it becomes a folder name and a command-line argument.
pub fn check_name(name: &str) -> Result<()> {
    check_name_of("dataset", name)
}

/// Checks the name of a `kind` of thing (`dataset`, `backbone`, `experiment`) the same way; errors say the kind.
pub(crate) fn check_name_of(kind: &'static str, name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidName {
            kind,
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 100 {
        return bad("it is longer than 100 characters");
    }
    if name.starts_with('.') {
        return bad("it starts with `.`");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return bad(&format!("it contains `{c}`"));
    }
    Ok(())
}

/// Reads up to `n` rows of the canonical table `file`, from the start.
pub fn read_rows(file: &Path, n: usize) -> Result<Vec<CanonicalRow>> {
    use std::io::BufRead;
    let reader = std::io::BufReader::new(std::fs::File::open(file).map_err(io(file))?);
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        if rows.len() >= n {
            break;
        }
        let line = line.map_err(io(file))?;
        let row = serde_json::from_str(&line).map_err(|e| Error::BadMetadata {
            path: file.to_path_buf(),
            message: format!("line {}: {e}", i + 1),
        })?;
        rows.push(row);
    }
    Ok(rows)
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `secs` since the epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn format_utc(secs: u64) -> String {
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("alpaca-v2.1_en").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(101)] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains("invalid dataset name"), "{err}");
        }
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400 + 3_661), "2000-02-29 01:01 UTC");
        assert_eq!(format_utc(1_767_225_599), "2025-12-31 23:59 UTC");
    }
}
