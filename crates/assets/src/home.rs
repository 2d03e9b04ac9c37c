//! `FERROTUNE_HOME`: where Ferrotune keeps its files.

use std::path::{Path, PathBuf};

/// The home folder: `$FERROTUNE_HOME`, else `$XDG_CACHE_HOME/ferrotune`, else `~/.cache/ferrotune`.
pub fn ferrotune_home() -> PathBuf {
    if let Some(home) = std::env::var_os("FERROTUNE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(cache).join("ferrotune");
    }
    let user_home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    user_home.join(".cache").join("ferrotune")
}

/// The documented layout under the home folder.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The home given by the environment ([`ferrotune_home`]).
    pub fn from_env() -> Self {
        Self::new(ferrotune_home())
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `assets/`: fetched registry archives and what is unpacked from them.
    pub fn assets(&self) -> PathBuf {
        self.root.join("assets")
    }

    /// `backbones/`: HF folders imported from GGUF files.
    pub fn backbones(&self) -> PathBuf {
        self.root.join("backbones")
    }
}
