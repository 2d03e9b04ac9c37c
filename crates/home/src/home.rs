//! `FERROTUNE_HOME`: where Ferrotune keeps its files. The layout is documented in `docs/home.md`.

use std::path::{Path, PathBuf};

/// The home folder: `$FERROTUNE_HOME`, else `$XDG_DATA_HOME/ferrotune`, else `~/.local/share/ferrotune`.
///
/// Data home rather than cache: the registry, imported datasets and experiments are the user's work, not
/// something that can be fetched again.
pub fn ferrotune_home() -> PathBuf {
    home_from(|key| std::env::var_os(key))
}

fn home_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let set = |key: &str| var(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(home) = set("FERROTUNE_HOME") {
        return home;
    }
    if let Some(data) = set("XDG_DATA_HOME") {
        return data.join("ferrotune");
    }
    set("HOME")
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".local")
        .join("share")
        .join("ferrotune")
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

    /// `registry.sqlite`: the index of datasets, experiments and metrics (rebuildable from the folders).
    pub fn registry(&self) -> PathBuf {
        self.root.join("registry.sqlite")
    }

    /// `datasets/`: one folder per imported dataset (`datasets/<name>/dataset.json` is its source of truth).
    pub fn datasets(&self) -> PathBuf {
        self.root.join("datasets")
    }

    /// `experiments/`: one output folder per experiment.
    pub fn experiments(&self) -> PathBuf {
        self.root.join("experiments")
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn home(vars: &[(&str, &str)]) -> PathBuf {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        home_from(|k| vars.get(k).cloned())
    }

    #[test]
    fn ferrotune_home_wins_then_xdg_data_then_local_share() {
        let all = [
            ("FERROTUNE_HOME", "/f"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/u"),
        ];
        assert_eq!(home(&all), PathBuf::from("/f"));
        assert_eq!(home(&all[1..]), PathBuf::from("/x/ferrotune"));
        assert_eq!(home(&all[2..]), PathBuf::from("/u/.local/share/ferrotune"));
        // Empty values count as unset.
        assert_eq!(
            home(&[
                ("FERROTUNE_HOME", ""),
                ("XDG_DATA_HOME", ""),
                ("HOME", "/u")
            ]),
            PathBuf::from("/u/.local/share/ferrotune")
        );
    }

    #[test]
    fn layout_is_under_the_root() {
        let h = Home::new("/h");
        assert_eq!(h.registry(), PathBuf::from("/h/registry.sqlite"));
        assert_eq!(h.datasets(), PathBuf::from("/h/datasets"));
        assert_eq!(h.experiments(), PathBuf::from("/h/experiments"));
        assert_eq!(h.assets(), PathBuf::from("/h/assets"));
        assert_eq!(h.backbones(), PathBuf::from("/h/backbones"));
    }
}
