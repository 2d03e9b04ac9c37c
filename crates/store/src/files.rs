//! File handling: atomic writes, temporary folders removed unless kept, and the inputs of an import (a file, a
//! folder of files, or a `.zip` archive of them).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{io, Error, Result};

/// Writes `target` atomically (see [`ferrotune_home::atomic`]).
pub(crate) fn write_atomically(target: &Path, bytes: &[u8]) -> Result<()> {
    ferrotune_home::atomic::write(target, bytes).map_err(io(target))
}

pub(crate) use ferrotune_home::atomic::{temp_sibling, unique};

/// A folder removed (with everything in it) when dropped, unless [`TempDir::keep`] was called.
pub(crate) struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// Creates `parent/.<prefix>-<unique>`.
    pub(crate) fn new(parent: &Path, prefix: &str) -> Result<TempDir> {
        let path = parent.join(format!(".{prefix}-{}", unique()));
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        Ok(TempDir { path, keep: false })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the folder in place (it was renamed, or is now someone else's).
    pub(crate) fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// One data file of an import.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    /// What the user gave, for messages and metadata (`archive.zip!member` for zip members).
    pub source: String,
    /// The file to read.
    pub path: PathBuf,
    /// The zip archive and member it came from.
    pub archive: Option<(PathBuf, String)>,
}

fn is_data_file(path: &Path) -> bool {
    ferrotune_data::Format::from_path(path).is_ok()
}

fn is_zip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with("__MACOSX")
}

/// The data files of `input`: the file itself; a folder's data and zip files (not recursing, hidden files
/// skipped, sorted by name); a zip archive's members (unpacked into `unpack`). Unsupported single files are
/// reported by the data crate with the supported extensions.
pub(crate) fn gather(input: &Path, unpack: &Path) -> Result<Vec<Input>> {
    let meta = std::fs::metadata(input).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::InputNotFound {
            path: input.to_path_buf(),
        },
        _ => io(input)(e),
    })?;
    let mut inputs = Vec::new();
    let mut unsafe_members = Vec::new();
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(input)
            .map_err(io(input))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| is_hidden(&n.to_string_lossy()))
            })
            .filter(|p| is_data_file(p) || is_zip(p))
            .collect();
        entries.sort();
        for path in entries {
            inputs.extend(gather_file(&path, unpack, &mut unsafe_members)?);
        }
    } else {
        inputs = gather_file(input, unpack, &mut unsafe_members)?;
    }
    if inputs.is_empty() {
        return Err(Error::NoDataFiles {
            path: input.to_path_buf(),
            unsafe_members,
        });
    }
    Ok(inputs)
}

/// The data files of one file (a zip archive's members unpacked); members whose path would leave the archive
/// (`../x.csv`, `/etc/x.csv`) are skipped and their names added to `unsafe_members`.
fn gather_file(path: &Path, unpack: &Path, unsafe_members: &mut Vec<String>) -> Result<Vec<Input>> {
    if !is_zip(path) {
        return Ok(vec![Input {
            source: path.display().to_string(),
            path: path.to_path_buf(),
            archive: None,
        }]);
    }
    let bad = |e: &dyn std::fmt::Display| Error::Archive {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(io(path))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(&e))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    let dir = unpack.join(unique_name(unpack, &stem));
    let mut inputs = Vec::new();
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).map_err(|e| bad(&e))?;
        let Some(inner) = member.enclosed_name() else {
            unsafe_members.push(String::from_utf8_lossy(member.name_raw()).into_owned());
            continue;
        };
        let name = inner.to_string_lossy().into_owned();
        let hidden = inner
            .components()
            .any(|c| is_hidden(&c.as_os_str().to_string_lossy()));
        if member.is_dir() || hidden || !is_data_file(&inner) {
            continue;
        }
        let file_name = inner
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let target = dir.join(unique_name(&dir, &file_name));
        let mut out = File::create(&target).map_err(io(&target))?;
        std::io::copy(&mut member, &mut out).map_err(|e| bad(&e))?;
        inputs.push(Input {
            source: format!("{}!{name}", path.display()),
            path: target,
            archive: Some((path.to_path_buf(), name)),
        });
    }
    Ok(inputs)
}

/// `name`, or `name` with a numeric prefix, so that nothing in `dir` is overwritten.
pub(crate) fn unique_name(dir: &Path, name: &str) -> String {
    if !dir.join(name).exists() {
        return name.to_string();
    }
    (2..)
        .map(|k| format!("{k}-{name}"))
        .find(|n| !dir.join(n).exists())
        .unwrap_or_else(|| name.to_string())
}

/// Copies (or, inside the same folder tree, moves) `from` to `dir` under a name not yet taken; returns it.
pub(crate) fn place(from: &Path, dir: &Path, is_ours: bool) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = from
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let target = dir.join(unique_name(dir, &name));
    if is_ours && std::fs::rename(from, &target).is_ok() {
        return Ok(target);
    }
    std::fs::copy(from, &target).map_err(io(&target))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn temp_dirs_go_away_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let t = TempDir::new(dir.path(), "tmp").unwrap();
        let p = t.path().to_path_buf();
        std::fs::write(p.join("f"), "x").unwrap();
        drop(t);
        assert!(!p.exists());
        let t = TempDir::new(dir.path(), "tmp").unwrap();
        let p = t.path().to_path_buf();
        t.keep();
        assert!(p.exists());
    }

    #[test]
    fn zip_members_are_unpacked_and_other_files_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("data.zip");
        let mut zip = zip::ZipWriter::new(File::create(&archive).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        for (name, text) in [
            ("a/train.csv", "prompt,answer\nq,a\n"),
            ("README.txt", "hi"),
            ("__MACOSX/a/._train.csv", "junk"),
            ("b/train.csv", "prompt,answer\nq2,a2\n"),
        ] {
            zip.start_file(name, opts).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        let unpack = dir.path().join("unpack");
        let inputs = gather(&archive, &unpack).unwrap();
        assert_eq!(inputs.len(), 2);
        assert!(inputs[0].source.ends_with("data.zip!a/train.csv"));
        assert_eq!(
            std::fs::read_to_string(&inputs[1].path).unwrap(),
            "prompt,answer\nq2,a2\n"
        );
        assert_ne!(inputs[0].path, inputs[1].path);
    }

    #[test]
    fn an_empty_folder_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let err = gather(dir.path(), &dir.path().join("u"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no dataset files"), "{err}");
    }
}
