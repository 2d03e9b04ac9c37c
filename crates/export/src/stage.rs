//! The export folder is assembled in a temporary sibling of `--out` and renamed into place at the end, so a
//! failure (disk full, bad run, kill) leaves no half-written export and touches nothing else.

use std::path::{Path, PathBuf};

use crate::error::{io, Error, Result};
use crate::source::free_bytes;

/// A staging folder beside the target, removed on drop unless [`Staged::commit`]ted.
pub struct Staged {
    pub dir: PathBuf,
    target: PathBuf,
    armed: bool,
}

impl Staged {
    /// Checks that `target` does not exist (or is empty) and that its disk has `needed` bytes free (plus
    /// 1 % and 16 MB of margin), then creates the staging folder.
    pub fn create(target: &Path, needed: u64) -> Result<Staged> {
        if target.exists() {
            let mut entries = std::fs::read_dir(target).map_err(io(target))?;
            if entries.next().is_some() {
                return Err(Error::OutputExists {
                    path: target.to_path_buf(),
                });
            }
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let needed = needed + needed / 100 + (16 << 20);
        if let Some(available) = free_bytes(&parent) {
            if available < needed {
                return Err(Error::NotEnoughSpace {
                    path: parent,
                    needed_mb: needed >> 20,
                    available_mb: available >> 20,
                });
            }
        }
        remove_dead_leftovers(&parent, target);
        let dir = ferrotune_home::atomic::temp_sibling(target);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Staged {
            dir,
            target: target.to_path_buf(),
            armed: true,
        })
    }

    /// Renames the staged folder to the target (an empty target folder is replaced).
    pub fn commit(mut self) -> Result<PathBuf> {
        if self.target.exists() {
            std::fs::remove_dir(&self.target).map_err(io(&self.target))?;
        }
        std::fs::rename(&self.dir, &self.target).map_err(io(&self.target))?;
        if let Some(parent) = self.target.parent() {
            let _ = ferrotune_home::atomic::sync_dir(parent);
        }
        self.armed = false;
        Ok(self.target.clone())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes the staging folders of earlier exports to `target` whose process is gone (killed mid-export):
/// `.<name>.tmp-<pid>-…` siblings of a dead pid.
fn remove_dead_leftovers(parent: &Path, target: &Path) {
    let Some(leaf) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{leaf}.tmp-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !crate::source::pid_alive(p)) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Writes `bytes` to `dir/name`.
pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(io(&path))
}

/// Writes `value` as pretty JSON to `dir/name`.
pub fn write_json(dir: &Path, name: &str, value: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON serializes");
    text.push('\n');
    write(dir, name, text)
}
