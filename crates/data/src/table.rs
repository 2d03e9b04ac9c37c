//! The in-memory table every dataset format is read into: column names and rows of optional strings.

use std::path::{Path, PathBuf};

/// How a row is located in its file, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOrigin {
    /// A 1-based line (CSV records, JSONL lines).
    Line(u64),
    /// A 1-based record number (JSON array elements, Parquet rows).
    Record(u64),
}

impl std::fmt::Display for RowOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowOrigin::Line(n) => write!(f, "line {n}"),
            RowOrigin::Record(n) => write!(f, "row {n}"),
        }
    }
}

/// A dataset file as text: numbers and booleans become their text, null and missing values `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub path: PathBuf,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// Where each row is in the file (same length as `rows`).
    pub origins: Vec<RowOrigin>,
}

impl Table {
    /// An empty table for `path` with `columns`.
    pub fn new(path: &Path, columns: Vec<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            columns,
            rows: Vec::new(),
            origins: Vec::new(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Index of the column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The value at (`row`, `col`), `""` when null or missing.
    pub fn text(&self, row: usize, col: usize) -> &str {
        self.rows[row]
            .get(col)
            .and_then(|v| v.as_deref())
            .unwrap_or("")
    }

    /// Where `row` is in the file.
    pub fn origin(&self, row: usize) -> RowOrigin {
        self.origins
            .get(row)
            .copied()
            .unwrap_or(RowOrigin::Record(row as u64 + 1))
    }

    /// Appends a row (padded with `None` to the column count).
    pub(crate) fn push(&mut self, mut row: Vec<Option<String>>, origin: RowOrigin) {
        row.resize(self.columns.len(), None);
        self.rows.push(row);
        self.origins.push(origin);
    }
}
