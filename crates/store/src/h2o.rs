//! An H2O LLM Studio experiment folder registered as a finished experiment: its `cfg.yaml` read as H2O wrote it
//! (`ferrotune_config::h2o`), its PEFT adapter (`adapter_model/`) as the run's adapter, so that it can be chatted
//! with, predicted with and exported like a Ferrotune run. H2O's `checkpoint.pth` (a whole-model torch pickle) is
//! not read.

use std::path::Path;

use ferrotune_config::Experiment;
use ferrotune_home::{RunDir, RunStatus};

use crate::error::{io, Error, Result};
use crate::experiment::{self, check_name, ExperimentInfo};
use crate::Store;

/// Where H2O LLM Studio saves a LoRA experiment's adapter (PEFT's `save_pretrained`).
pub const H2O_ADAPTER_DIR: &str = "adapter_model";

impl Store {
    /// Registers the H2O LLM Studio experiment in `dir` as the finished experiment `name`, in its own folder
    /// `experiments/NAME` (H2O's folder is only read).
    pub fn import_h2o_experiment(&mut self, dir: &Path, name: &str) -> Result<ExperimentInfo> {
        check_name(name)?;
        let not_h2o = |reason: String| Error::NotAnH2oExperiment {
            path: dir.to_path_buf(),
            reason,
        };
        let cfg_path = dir.join("cfg.yaml");
        if !cfg_path.is_file() {
            return Err(not_h2o("it has no `cfg.yaml`".into()));
        }
        let mut cfg = Experiment::load(&cfg_path).map_err(|e| Error::Config(Box::new(e)))?;
        let adapter = dir.join(H2O_ADAPTER_DIR);
        for file in ["adapter_config.json", "adapter_model.safetensors"] {
            if !adapter.join(file).is_file() {
                return Err(not_h2o(format!(
                    "it has no `{H2O_ADAPTER_DIR}/{file}` (only LoRA experiments saved with safetensors are read; `checkpoint.pth` is not)"
                )));
            }
        }
        let _shared = self.lock_registry(false)?;
        let root = self.home.experiments();
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        let target = root.join(name);
        if target.exists() {
            return Err(Error::ExperimentFolderExists { path: target });
        }
        cfg.experiment_name = name.to_string();
        cfg.output_directory = target.display().to_string();
        let staged = ferrotune_home::atomic::temp_sibling(&target);
        let run = RunDir::new(&staged);
        let write = || -> Result<()> {
            std::fs::create_dir_all(run.adapter()).map_err(io(&run.adapter()))?;
            for entry in std::fs::read_dir(&adapter).map_err(io(&adapter))?.flatten() {
                if entry.path().is_file() {
                    let to = run.adapter().join(entry.file_name());
                    std::fs::copy(entry.path(), &to).map_err(io(&to))?;
                }
            }
            cfg.save(&run.config())
                .map_err(|e| Error::Config(Box::new(e)))?;
            run.write_status(
                RunStatus::Finished,
                &format!(
                    "imported from the H2O LLM Studio experiment {}",
                    dir.display()
                ),
            )
            .map_err(io(&run.status()))?;
            std::fs::rename(&staged, &target).map_err(io(&target))
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e);
        }
        let path = self.registry.path().to_path_buf();
        let home = self.home.clone();
        let registered = self.registry.write(|tx| {
            if experiment::get(tx, &path, name)?.is_some() {
                return Err(Error::ExperimentExists { name: name.into() });
            }
            let run = crate::rebuild::row_of_folder(&home, &target)?;
            crate::rebuild::insert(tx, &path, std::slice::from_ref(&run))?;
            Ok(run.0)
        });
        if registered.is_err() {
            let _ = std::fs::remove_dir_all(&target);
        }
        registered
    }
}
