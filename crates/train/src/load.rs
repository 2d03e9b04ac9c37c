//! The one way to find and load what a run trained on and produced: which backbone (an empty `llm_backbone` is
//! the demo backbone), in which weight format, with which adapter. The CLI, the studio's chat, the demo — and
//! export, predict and serving next — all go through here.

use std::path::{Path, PathBuf};

use ferrotune_config::Experiment;
use ferrotune_home::{Home, Progress, RunDir};
use ferrotune_model::{Backbone, Device, WeightFormat};

use crate::error::{Error, Result};
use crate::settings::inference_format;

/// The backbone a config trains: `llm_backbone` (a Hugging Face folder or a `.gguf` file), or the demo backbone
/// (fetched into the home on first use) when it is empty.
pub fn resolve_backbone(cfg: &Experiment, home: &Home, progress: Progress) -> Result<PathBuf> {
    match cfg.llm_backbone.trim() {
        "" => ferrotune_home::ensure_demo_backbone(home, progress).map_err(Error::DemoBackbone),
        path => Ok(ferrotune_config::expand_path(path)),
    }
}

/// What [`TrainedModel::load`] will load for a run: enough to tell two loads apart without loading.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModel {
    /// The run's settings (`cfg.yaml`).
    pub config: Experiment,
    /// The backbone folder or `.gguf` file.
    pub backbone: PathBuf,
    pub format: WeightFormat,
    /// The run's adapter, when it has saved one (else the backbone alone answers).
    pub adapter: Option<PathBuf>,
}

impl TrainedModel {
    /// The model of the run in `run` as it would be loaded on `device`. Reads only `cfg.yaml` (and fetches the
    /// demo backbone when the run trained it and it is missing).
    pub fn of_run(run: &RunDir, home: &Home, device: &Device) -> Result<TrainedModel> {
        let config = Experiment::load(&run.config()).map_err(|e| Error::Setting(e.to_string()))?;
        Self::of_config(config, run, home, device)
    }

    /// Like [`TrainedModel::of_run`], with the run's settings already read.
    pub fn of_config(
        config: Experiment,
        run: &RunDir,
        home: &Home,
        device: &Device,
    ) -> Result<TrainedModel> {
        // A full fine-tuning's model is a backbone folder of its own.
        let backbone = if run.has_model() {
            run.model()
        } else {
            resolve_backbone(&config, home, &mut |_| {})?
        };
        Ok(TrainedModel {
            format: inference_format(&config, device),
            backbone,
            adapter: run.has_adapter().then(|| run.adapter()),
            config,
        })
    }

    /// The folder of the trained weights (the adapter, or the fully fine-tuned model): where a head is saved.
    pub fn weights_dir(&self) -> &Path {
        self.adapter.as_deref().unwrap_or(&self.backbone)
    }

    /// Loads the backbone (importing a `.gguf` into the home's `backbones/` once) and applies the adapter.
    pub fn load(&self, home: &Home, device: &Device) -> Result<Backbone> {
        load_backbone(
            &self.backbone,
            self.format,
            self.adapter.as_deref(),
            home,
            device,
        )
    }
}

/// Loads `backbone` in `format` on `device`, with `adapter` (a PEFT folder, or a run folder holding one) on it.
pub fn load_backbone(
    backbone: &Path,
    format: WeightFormat,
    adapter: Option<&Path>,
    home: &Home,
    device: &Device,
) -> Result<Backbone> {
    let mut model = Backbone::load(backbone, format, device, &home.backbones())?;
    if let Some(dir) = adapter {
        ferrotune_model::adapter::load_peft(&mut model.model, dir)?;
    }
    Ok(model)
}
