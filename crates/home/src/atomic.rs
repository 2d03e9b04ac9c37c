//! Atomic writes, the one way every crate writes a file or swaps a folder under the home: the new content goes
//! to a temporary sibling unique to this process and call, is flushed to disk, and is renamed over the target;
//! then the folder holding it is flushed too, so after a crash or a full disk a reader sees the old content or
//! the new one, never a half-written file.
//!
//! Errors are plain [`std::io::Error`]s: the caller names the file in its own error type.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `target` atomically (creating the parent folder).
pub fn write(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(target, |file| file.write_all(bytes))
}

/// Writes `target` atomically with `fill`, which writes the content into the temporary file.
pub fn write_with(
    target: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let parent = parent_of(target);
    std::fs::create_dir_all(parent)?;
    let tmp = temp_sibling(target);
    let result = File::create(&tmp)
        .and_then(|mut f| {
            fill(&mut f)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, target))
        .and_then(|()| sync_dir(parent));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Puts the folder `staged` (written completely, a sibling of `target`) in place of `target`. An existing
/// `target` is first renamed to `<target>.old` and removed only once `staged` is in place, so a crash in between
/// leaves one of the two whole (readers that care fall back to `.old`, see [`backup_of`]).
pub fn replace_dir(staged: &Path, target: &Path) -> std::io::Result<()> {
    sync_tree(staged)?;
    let old = backup_of(target);
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    if target.exists() {
        std::fs::rename(target, &old)?;
    }
    std::fs::rename(staged, target)?;
    sync_dir(parent_of(target))?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// `<target>.old`: where [`replace_dir`] keeps the previous folder while it swaps.
pub fn backup_of(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!("{name}.old"))
}

/// A hidden sibling of `target` unique to this process and call: `.<name>.tmp-<pid>-<nanos>-<n>`.
pub fn temp_sibling(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.tmp-{}", unique()))
}

/// Whether `name` is one of [`temp_sibling`]'s names (left behind by a process that was killed mid-write).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// `<pid>-<nanoseconds>-<counter>`: unique among processes and calls.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Flushes a folder's entries (the renames into it) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Flushes every file of `dir` (one level deep, as adapters and checkpoints are) and the folder itself.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)?.sync_all()?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_content_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f.txt");
        write(&target, b"old").unwrap();
        let r = write_with(&target, |_| Err(std::io::Error::other("disk full")));
        assert!(r.is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn two_writers_never_share_a_temporary_name() {
        let t = Path::new("/x/status.json");
        assert_ne!(temp_sibling(t), temp_sibling(t));
        assert!(is_temp_name(
            &temp_sibling(t).file_name().unwrap().to_string_lossy()
        ));
    }

    #[test]
    fn replace_dir_swaps_and_removes_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("adapter");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("a"), b"1").unwrap();
        let staged = temp_sibling(&target);
        std::fs::create_dir(&staged).unwrap();
        std::fs::write(staged.join("a"), b"2").unwrap();
        replace_dir(&staged, &target).unwrap();
        assert_eq!(std::fs::read(target.join("a")).unwrap(), b"2");
        assert!(!backup_of(&target).exists() && !staged.exists());
    }
}
