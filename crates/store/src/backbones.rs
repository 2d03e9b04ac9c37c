//! The list of registered backbones (`backbones.json` in the home): a name for each Hugging Face folder a user
//! registered (anywhere on disk) or a GGUF file imported into `backbones/`. The file is the source of truth; the
//! folders themselves belong to their owners (or to `ferrotune-model` for imported GGUF files).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::now;
use crate::error::{io, Error, Result};
use crate::{files, Store};

const BACKBONES_FILE: &str = "backbones.json";

/// One registered backbone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackboneEntry {
    /// A short name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The Hugging Face folder (config.json, *.safetensors, tokenizer.json).
    pub path: PathBuf,
    /// The `.gguf` file it was imported from, if any.
    #[serde(default)]
    pub gguf: Option<PathBuf>,
    /// Unix seconds.
    pub added: u64,
}

/// Checks that `dir` looks like a Hugging Face model folder.
pub fn check_backbone_folder(dir: &Path) -> Result<()> {
    let bad = |reason: &str| Error::NotABackbone {
        path: dir.to_path_buf(),
        reason: reason.into(),
    };
    if dir.is_file() {
        let is_gguf = dir
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        return Err(bad(if is_gguf {
            "it is a `.gguf` file, which is imported first (GGUF import writes a folder and can register it)"
        } else {
            "it is a file, not a folder (pass the folder that holds `config.json`)"
        }));
    }
    if !dir.is_dir() {
        return Err(bad("no such folder"));
    }
    if !dir.join("config.json").is_file() {
        return Err(bad("`config.json` is missing"));
    }
    if !dir.join("tokenizer.json").is_file() {
        return Err(bad("`tokenizer.json` is missing"));
    }
    let has_weights = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"));
    if !has_weights {
        return Err(bad("no `*.safetensors` weights"));
    }
    // The loader's own checks, without reading the weights: architecture, headers, shapes.
    ferrotune_model::check_folder(dir).map_err(|e| bad(&e.to_string()))
}

/// Checks a backbone name: it is shown in pickers and typed on the command line.
pub fn check_backbone_name(name: &str) -> Result<()> {
    crate::dataset::check_name_of("backbone", name)
}

impl Store {
    fn backbones_file(&self) -> PathBuf {
        self.home.root().join(BACKBONES_FILE)
    }

    /// The registered backbones, in the order they were added.
    pub fn backbones(&self) -> Result<Vec<BackboneEntry>> {
        let path = self.backbones_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Error::BadMetadata {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The backbone named `name`.
    pub fn backbone(&self, name: &str) -> Result<BackboneEntry> {
        self.backbones()?
            .into_iter()
            .find(|b| b.name == name)
            .ok_or_else(|| Error::BackboneNotFound { name: name.into() })
    }

    /// Registers the Hugging Face folder `path` (made absolute) as `name`.
    pub fn register_backbone(
        &mut self,
        name: &str,
        path: &Path,
        gguf: Option<&Path>,
    ) -> Result<BackboneEntry> {
        check_backbone_name(name)?;
        let path = std::path::absolute(path).map_err(io(path))?;
        check_backbone_folder(&path)?;
        let _shared = self.lock_registry(false)?;
        let mut all = self.backbones()?;
        if all.iter().any(|b| b.name == name) {
            return Err(Error::BackboneExists { name: name.into() });
        }
        let entry = BackboneEntry {
            name: name.into(),
            path,
            gguf: gguf.map(Path::to_path_buf),
            added: now(),
        };
        all.push(entry.clone());
        self.save_backbones(&all)?;
        Ok(entry)
    }

    /// Forgets the backbone `name` (its folder stays where it is).
    pub fn unregister_backbone(&mut self, name: &str) -> Result<()> {
        let _shared = self.lock_registry(false)?;
        let mut all = self.backbones()?;
        let before = all.len();
        all.retain(|b| b.name != name);
        if all.len() == before {
            return Err(Error::BackboneNotFound { name: name.into() });
        }
        self.save_backbones(&all)
    }

    fn save_backbones(&self, all: &[BackboneEntry]) -> Result<()> {
        let text = serde_json::to_string_pretty(all).map_err(|e| Error::BadMetadata {
            path: self.backbones_file(),
            message: e.to_string(),
        })?;
        files::write_atomically(&self.backbones_file(), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of the model crate's tiny Llama fixture (a real backbone folder).
    fn folder(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/llama3_rope");
        for f in ["config.json", "tokenizer.json", "model.safetensors"] {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
    }

    #[test]
    fn r20_registering_checks_what_loading_checks() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = Store::open(crate::Home::new(tmp.path().join("home"))).unwrap();
        let model = tmp.path().join("model");
        // A truncated weights file.
        folder(&model);
        let weights = model.join("model.safetensors");
        let bytes = std::fs::read(&weights).unwrap();
        std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
        let err = store
            .register_backbone("cut", &model, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.safetensors"), "{err}");
        // An architecture the loader does not run.
        folder(&model);
        let cfg_path = model.join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
        cfg["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let err = store
            .register_backbone("gpt2", &model, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("GPT2LMHeadModel"), "{err}");
        // A vocabulary the embedding does not have.
        folder(&model);
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
        cfg["vocab_size"] = serde_json::json!(cfg["vocab_size"].as_u64().unwrap() + 5);
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let err = store
            .register_backbone("vocab", &model, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vocab_size"), "{err}");
        assert!(
            store.backbones().unwrap().is_empty(),
            "nothing half-registered"
        );
    }

    #[test]
    fn register_list_and_unregister() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = Store::open(crate::Home::new(tmp.path().join("home"))).unwrap();
        let model = tmp.path().join("model");
        folder(&model);
        store.register_backbone("tiny", &model, None).unwrap();
        assert!(matches!(
            store.register_backbone("tiny", &model, None),
            Err(Error::BackboneExists { .. })
        ));
        let err = store.register_backbone("../x", &model, None).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidName {
                    kind: "backbone",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("invalid backbone name `../x`"),
            "{err}"
        );
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let err = store.register_backbone("e", &empty, None).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
        assert_eq!(store.backbones().unwrap()[0].path, model);
        store.unregister_backbone("tiny").unwrap();
        assert!(store.backbones().unwrap().is_empty());
    }
}
