//! Reading dataset files into a [`Table`]: CSV, Parquet, JSON (an array of objects) and JSONL (one object per
//! line), chosen by extension. Values become text: numbers and booleans are written out, nested JSON values stay
//! JSON, null and missing values are `None`.

pub(crate) mod csv;
mod json;
pub(crate) mod parquet;

use std::path::Path;

use crate::error::{Error, Result};
use crate::table::Table;

/// A dataset file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
    Json,
    Jsonl,
}

impl Format {
    /// The format of `path`, from its extension (case-insensitive).
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        match ext.as_str() {
            "csv" => Ok(Format::Csv),
            "parquet" | "pq" => Ok(Format::Parquet),
            "json" => Ok(Format::Json),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            _ => Err(Error::UnsupportedFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// Reads the whole file at `path`.
pub fn read_table(path: &Path) -> Result<Table> {
    match Format::from_path(path)? {
        Format::Csv => csv::read(path),
        Format::Parquet => parquet::read(path),
        Format::Json => json::read_array(path),
        Format::Jsonl => json::read_lines(path),
    }
}

/// The column names of the file at `path`, for config pre-flight: CSV reads only the header and Parquet only the
/// schema; JSON and JSONL are parsed whole (their columns are the union of the objects' keys, in first-seen order).
pub fn read_columns(path: &Path) -> Result<Vec<String>> {
    match Format::from_path(path)? {
        Format::Csv => csv::read_header(path),
        Format::Parquet => parquet::read_schema(path),
        Format::Json | Format::Jsonl => Ok(read_table(path)?.columns),
    }
}

/// The text of `column` for each validation sample, from the row it came from (in the validation file, or in the
/// training file when the split is automatic); `None` when that file has no such column.
pub fn validation_column(
    settings: &crate::DatasetSettings,
    samples: &[crate::Sample],
    column: &str,
) -> Result<Option<Vec<String>>> {
    let path = match (
        &settings.validation_strategy,
        &settings.validation_dataframe,
    ) {
        (crate::ValidationStrategy::Custom, Some(path)) => path.as_path(),
        _ => settings.train_dataframe.as_path(),
    };
    let table = read_table(path)?;
    let Some(col) = table.column(column) else {
        return Ok(None);
    };
    Ok(Some(
        samples
            .iter()
            .map(|s| {
                if s.row < table.len() {
                    table.text(s.row, col).to_string()
                } else {
                    String::new()
                }
            })
            .collect(),
    ))
}

/// Opens `path`, naming it on failure.
pub(crate) fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `path` as UTF-8, naming the first bad line.
fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..valid]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64
            + 1;
        Error::NotUtf8 {
            path: path.to_path_buf(),
            line: Some(line),
        }
    })
}

/// A float as text, integral values without a fraction (so a float id `3.0` matches `3`).
pub(crate) fn float_text(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(
            Format::from_path(Path::new("a/b.CSV")).unwrap(),
            Format::Csv
        );
        assert_eq!(
            Format::from_path(Path::new("b.pq")).unwrap(),
            Format::Parquet
        );
        assert_eq!(
            Format::from_path(Path::new("b.ndjson")).unwrap(),
            Format::Jsonl
        );
        let err = Format::from_path(Path::new("b.xlsx"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`b.xlsx`") && err.contains("help:"), "{err}");
    }

    #[test]
    fn floats_drop_integral_fractions() {
        assert_eq!(float_text(3.0), "3");
        assert_eq!(float_text(2.5), "2.5");
        assert_eq!(float_text(f64::NAN), "NaN");
    }
}
