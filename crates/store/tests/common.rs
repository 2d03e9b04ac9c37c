//! Helpers: a store in a temporary home, files written in one line.

use std::path::{Path, PathBuf};

use ferrotune_store::{Home, ImportOptions, Mapping, Store};

pub struct TestHome {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

impl TestHome {
    pub fn new() -> TestHome {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Home::new(dir.path().join("home"))).unwrap();
        TestHome { dir, store }
    }

    pub fn home(&self) -> Home {
        Home::new(self.dir.path().join("home"))
    }

    /// Writes `text` to `name` beside the home and returns its path.
    pub fn file(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn import(
        &mut self,
        name: &str,
        train: &Path,
    ) -> ferrotune_store::Result<ferrotune_store::DatasetInfo> {
        self.store.import_dataset(&ImportOptions {
            name: name.into(),
            train: train.to_path_buf(),
            validation: None,
            mapping: Mapping::default(),
        })
    }

    /// Entries of `datasets/`, sorted (hidden ones included, so leftovers show).
    pub fn dataset_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.home().datasets())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".locks")
            .collect();
        names.sort();
        names
    }
}
