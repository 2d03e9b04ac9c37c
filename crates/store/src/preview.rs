//! A look at an import's input before importing it (the studio's mapping step): the first data file of a file,
//! folder or `.zip` archive — gathered as the importer gathers them — its columns, first rows, row count, and the
//! mapping the importer would recognise.

use std::path::Path;

use ferrotune_data::import::{guess_mapping, Mapping};

use crate::error::{Error, Result};
use crate::files::{gather, TempDir};
use crate::Store;

/// What the mapping step shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Preview {
    /// The data file shown (`archive.zip!member` for a zip member).
    pub file: String,
    pub columns: Vec<String>,
    /// The first rows, each value cut to [`PREVIEW_CHARS`] characters.
    pub rows: Vec<Vec<String>>,
    pub total_rows: usize,
    /// The mapping the importer recognises from the columns.
    pub guess: Mapping,
}

/// Characters kept of each previewed value.
pub const PREVIEW_CHARS: usize = 300;

impl Store {
    /// The first `rows` rows of the first data file of `input` (a file, a folder of files or a `.zip` of them).
    pub fn preview_import(&self, input: &Path, rows: usize) -> Result<Preview> {
        let unpack = TempDir::new(self.home.root(), "preview")?;
        let inputs = gather(input, unpack.path())?;
        let Some(first) = inputs.first() else {
            return Err(Error::NoDataFiles {
                path: input.to_path_buf(),
                unsafe_members: Vec::new(),
            });
        };
        let table = ferrotune_data::read_table(&first.path)?;
        let cut = |t: &str| {
            if t.chars().count() > PREVIEW_CHARS {
                format!("{}…", t.chars().take(PREVIEW_CHARS).collect::<String>())
            } else {
                t.to_string()
            }
        };
        let shown = (0..table.len().min(rows))
            .map(|r| {
                (0..table.columns.len())
                    .map(|c| cut(table.text(r, c)))
                    .collect()
            })
            .collect();
        let file = match &first.archive {
            Some((archive, member)) => format!(
                "{}!{member}",
                archive
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            None => first
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        Ok(Preview {
            file,
            guess: guess_mapping(&table.columns),
            total_rows: table.len(),
            columns: table.columns,
            rows: shown,
        })
    }
}
