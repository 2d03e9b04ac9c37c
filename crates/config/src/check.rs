//! Pre-flight validation, stage two: what the config crate can check in the world on its own. The data files
//! and the backbone exist, the output folder is writable and its disk has room.
//!
//! Column checks (do `prompt_column`, `answer_column`, `system_column`, `parent_id_column` and `id_column` exist in
//! the data?) need the dataset read, so the data crate does them when it loads the files; the chat template is
//! checked by the crate that loads the backbone.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use crate::error::{Issue, Report};
use crate::schema::{expand_path, Experiment};

/// File extensions the data crate reads.
pub const DATA_EXTENSIONS: [&str; 4] = ["csv", "parquet", "json", "jsonl"];

/// Less free disk space than this under the output folder draws a warning.
pub const LOW_DISK_WARNING_BYTES: u64 = 1 << 30;

/// Less free disk space than this under the output folder is an error.
pub const LOW_DISK_ERROR_BYTES: u64 = 100 << 20;

/// Checks the data files, the backbone, the pretrained weights and the output folder (writable, with disk
/// space). Writes and removes one empty probe file in the output folder, or in its nearest existing parent.
pub fn check_environment(cfg: &Experiment) -> Report {
    let mut report = Report::default();
    data_file(
        &mut report,
        "dataset.train_dataframe",
        &cfg.dataset.train_dataframe,
    );
    if cfg.applies("dataset.validation_dataframe") {
        data_file(
            &mut report,
            "dataset.validation_dataframe",
            &cfg.dataset.validation_dataframe,
        );
    }
    let backbones: Vec<String> = match cfg.grid.get("llm_backbone") {
        Some(values) => values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        None => vec![cfg.llm_backbone.clone()],
    };
    for backbone in backbones.iter().filter(|b| !b.is_empty()) {
        backbone_path(&mut report, backbone);
    }
    let weights = &cfg.architecture.pretrained_weights;
    if !weights.is_empty() && !expand_path(weights).exists() {
        report.error(missing(
            "architecture.pretrained_weights",
            &expand_path(weights),
        ));
    }
    if !cfg.output_directory.trim().is_empty() {
        output_dir(&mut report, &cfg.output_dir());
    }
    report
}

fn missing(key: &str, path: &Path) -> Issue {
    Issue::new(
        key,
        format!("names `{}`, which does not exist", path.display()),
    )
    .with_help("check the path; relative paths start in the folder ferrotune runs in")
}

fn data_file(report: &mut Report, key: &str, value: &str) {
    if value.trim().is_empty() {
        return;
    }
    let path = expand_path(value);
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if !extension
        .as_deref()
        .is_some_and(|e| DATA_EXTENSIONS.contains(&e))
    {
        report.error(
            Issue::new(
                key,
                format!("names `{}`, whose format is not supported", path.display()),
            )
            .with_help("use a .csv, .parquet, .json or .jsonl file"),
        );
    }
    if !path.exists() {
        report.error(missing(key, &path));
    } else if !path.is_file() {
        report.error(Issue::new(
            key,
            format!("names `{}`, which is not a file", path.display()),
        ));
    }
}

fn backbone_path(report: &mut Report, value: &str) {
    let path = expand_path(value);
    let help = "give a Hugging Face folder (config.json, model.safetensors, tokenizer.json) or a .gguf file, \
                or leave `llm_backbone` empty for the demo backbone";
    if !path.exists() {
        report.error(
            Issue::new(
                "llm_backbone",
                format!("names `{}`, which does not exist", path.display()),
            )
            .with_help(help),
        );
    } else if path.is_file()
        && !path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        report.error(
            Issue::new(
                "llm_backbone",
                format!("names `{}`, a file but not a .gguf file", path.display()),
            )
            .with_help(help),
        );
    } else if path.is_dir() && !path.join("config.json").is_file() {
        report.warning(
            Issue::new(
                "llm_backbone",
                format!("names `{}`, a folder without config.json", path.display()),
            )
            .with_help(help),
        );
    }
}

fn output_dir(report: &mut Report, dir: &Path) {
    let key = "output_directory";
    if dir.is_file() {
        report.error(Issue::new(
            key,
            format!("names `{}`, which is a file", dir.display()),
        ));
        return;
    }
    if dir
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        report.warning(
            Issue::new(
                key,
                format!(
                    "`{}` exists and is not empty; a run may overwrite its files",
                    dir.display()
                ),
            )
            .with_help("choose a new folder, or a new `experiment_name`"),
        );
    }
    let existing = nearest_existing(dir);
    if existing.is_file() {
        report.error(
            Issue::new(
                key,
                format!(
                    "names `{}`, inside `{}`, which is a file",
                    dir.display(),
                    existing.display()
                ),
            )
            .with_help("choose a folder path whose parents are folders"),
        );
        return;
    }
    let probe = existing.join(format!(".ferrotune-write-probe-{}", std::process::id()));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => {
            report.error(
                Issue::new(
                    key,
                    format!(
                        "cannot be written: `{}` is not writable ({e})",
                        existing.display()
                    ),
                )
                .with_help("choose a folder you can write to"),
            );
            return;
        }
    }
    if let Some(available) = available_bytes(&existing) {
        disk_space(report, &existing, available);
    }
}

/// The path itself if it exists, else its nearest existing parent (`.` for a relative path with none); a file
/// when a parent of the folder is a file.
fn nearest_existing(dir: &Path) -> PathBuf {
    let mut current = dir;
    loop {
        if current.exists() {
            return current.to_path_buf();
        }
        match current.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => current = parent,
            _ => return PathBuf::from("."),
        }
    }
}

/// The disk-space rule: an error under [`LOW_DISK_ERROR_BYTES`], a warning under [`LOW_DISK_WARNING_BYTES`].
pub(crate) fn disk_space(report: &mut Report, dir: &Path, available: u64) {
    let mib = available >> 20;
    let message = format!("has {mib} MiB free on the disk of `{}`", dir.display());
    let help = "free some space, or choose an output folder on another disk";
    if available < LOW_DISK_ERROR_BYTES {
        report.error(Issue::new("output_directory", message).with_help(help));
    } else if available < LOW_DISK_WARNING_BYTES {
        report.warning(Issue::new("output_directory", message).with_help(help));
    }
}

/// Bytes an unprivileged user may still write on the file system holding `dir`.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // the field types differ between platforms
fn available_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `stat` points to writable memory of the right type.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

#[cfg(not(unix))]
fn available_bytes(_dir: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_space_thresholds() {
        let dir = Path::new("/x");
        let mut r = Report::default();
        disk_space(&mut r, dir, 50 << 20);
        assert_eq!((r.errors.len(), r.warnings.len()), (1, 0));
        let mut r = Report::default();
        disk_space(&mut r, dir, 500 << 20);
        assert_eq!((r.errors.len(), r.warnings.len()), (0, 1));
        let mut r = Report::default();
        disk_space(&mut r, dir, 2 << 30);
        assert!(r.errors.is_empty() && r.warnings.is_empty());
    }

    #[test]
    fn statvfs_reads_the_temp_disk() {
        assert!(available_bytes(&std::env::temp_dir()).is_some_and(|b| b > 0));
    }

    #[test]
    fn nearest_existing_walks_up() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(nearest_existing(&tmp.path().join("a/b/c")), tmp.path());
        assert_eq!(
            nearest_existing(Path::new("no-such-dir-xyz/a")),
            PathBuf::from(".")
        );
    }
}
