//! The studio's exports of an experiment's model: each kind (`hf`, `gguf-<type>`, `gguf-adapter`) is written by
//! `ferrotune_export` into the run folder's `exports/<kind>/` (staged and swapped in whole, so a newer export
//! replaces an older one only once it is complete), listed, and offered for download.

use std::path::PathBuf;

use ferrotune_export::{ExportDtype, ExportFormat, ExportOptions, GgufType, Progress, RunSource};
use ferrotune_home::RunDir;

use crate::error::{io, Error, Result};
use crate::Store;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExportRequest {
    pub format: ExportFormat,
    pub gguf_type: GgufType,
    pub dtype: Option<ExportDtype>,
}

impl ExportRequest {
    /// The folder name under `exports/`: `hf` (`hf-<dtype>` when one is asked for), `gguf-<type>`, `gguf-adapter`.
    pub fn kind(&self) -> String {
        match (self.format, self.dtype) {
            (ExportFormat::Hf, None) => "hf".into(),
            (ExportFormat::Hf, Some(d)) => format!("hf-{}", d.name()),
            (ExportFormat::Gguf, _) => format!("gguf-{}", self.gguf_type.name()),
            (ExportFormat::GgufAdapter, _) => "gguf-adapter".into(),
        }
    }
}

/// An export on disk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportRecord {
    pub kind: String,
    pub path: PathBuf,
    pub files: Vec<(String, u64)>,
    pub bytes: u64,
}

/// An export resolved and checked, ready to run (without the store: it takes minutes).
pub struct PlannedExport {
    source: RunSource,
    target: PathBuf,
    kind: String,
    options: ExportOptions,
}

impl PlannedExport {
    /// The kind (folder name) it writes.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Writes the export, replacing an older one of the same kind once the new one is complete.
    pub fn run(self, progress: &mut dyn FnMut(Progress)) -> Result<ExportRecord> {
        let exports = self.target.parent().map(PathBuf::from).unwrap_or_default();
        std::fs::create_dir_all(&exports).map_err(io(&exports))?;
        let summary =
            ferrotune_export::export(&self.source, &self.options, progress).map_err(Error::from)?;
        if self.options.out != self.target {
            ferrotune_home::atomic::replace_dir(&self.options.out, &self.target)
                .map_err(io(&self.target))?;
        }
        Ok(ExportRecord {
            kind: self.kind,
            bytes: summary.files.iter().map(|(_, b)| b).sum(),
            files: summary.files,
            path: self.target,
        })
    }
}

/// An export's download: the GGUF file itself, or the folder as a zip.
pub struct ExportDownload {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// Downloads through the studio are built in memory; past this the files are taken from disk.
const MAX_DOWNLOAD_BYTES: u64 = 2 << 30;

impl Store {
    /// Checks that experiment `name` can be exported as `request` asks and plans it.
    pub fn plan_export(&mut self, name: &str, request: ExportRequest) -> Result<PlannedExport> {
        let run = self.run_dir(name)?;
        let source = RunSource::resolve(&run, self.home()).map_err(Error::from)?;
        let kind = request.kind();
        let target = run.export_dir(&kind);
        let out = if target.exists() {
            ferrotune_home::atomic::temp_sibling(&target)
        } else {
            target.clone()
        };
        let mut options = ExportOptions::new(out, request.format);
        options.dtype = request.dtype;
        options.gguf_type = request.gguf_type;
        Ok(PlannedExport {
            source,
            target,
            kind,
            options,
        })
    }

    /// The exports experiment `name` has on disk.
    pub fn exports(&mut self, name: &str) -> Result<Vec<ExportRecord>> {
        let run = self.run_dir(name)?;
        Ok(list_exports(&run))
    }

    /// Experiment `name`'s export `kind` as one download.
    pub fn export_download(&mut self, name: &str, kind: &str) -> Result<ExportDownload> {
        let run = self.run_dir(name)?;
        let record = list_exports(&run)
            .into_iter()
            .find(|r| r.kind == kind)
            .ok_or_else(|| Error::RunFileMissing {
                name: name.into(),
                what: "export",
                when: "written when an export of this kind finishes (Downloads tab, or `ferrotune export`)",
            })?;
        if record.bytes > MAX_DOWNLOAD_BYTES {
            return Err(Error::Corrupt {
                path: record.path.clone(),
                message: format!(
                    "is {:.1} GB, too large to download through the studio; copy the files from that folder",
                    record.bytes as f64 / 1e9
                ),
            });
        }
        let gguf = record.files.iter().find(|(f, _)| f.ends_with(".gguf"));
        match gguf {
            Some((file, _)) => {
                let path = record.path.join(file);
                Ok(ExportDownload {
                    file_name: file.clone(),
                    bytes: std::fs::read(&path).map_err(io(&path))?,
                })
            }
            None => Ok(ExportDownload {
                file_name: format!("{name}-{kind}.zip"),
                bytes: crate::runs::zip_folder_stored(&record.path, &format!("{name}-{kind}"))?,
            }),
        }
    }
}

fn list_exports(run: &RunDir) -> Vec<ExportRecord> {
    let Ok(entries) = std::fs::read_dir(run.exports()) else {
        return Vec::new();
    };
    let mut out: Vec<ExportRecord> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter(|e| !ferrotune_home::atomic::is_temp_name(&e.file_name().to_string_lossy()))
        .map(|e| {
            let mut files: Vec<(String, u64)> = std::fs::read_dir(e.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|f| {
                    (
                        f.file_name().to_string_lossy().into_owned(),
                        f.metadata().map(|m| m.len()).unwrap_or(0),
                    )
                })
                .collect();
            files.sort();
            ExportRecord {
                kind: e.file_name().to_string_lossy().into_owned(),
                path: e.path(),
                bytes: files.iter().map(|(_, b)| b).sum(),
                files,
            }
        })
        .collect();
    out.sort_by(|a, b| a.kind.cmp(&b.kind));
    out
}
