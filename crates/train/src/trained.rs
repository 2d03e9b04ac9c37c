//! What a run trains and saves, declared once: LoRA adapters on the frozen backbone (a PEFT folder, the run's
//! `adapter/`), or — `training.lora: false` — every backbone weight whose name no `training.freeze_layers`
//! entry is part of (a Hugging Face folder that transformers loads, the run's `model/`). The loop, the hooks
//! and the checkpoints only see [`Trained`].

use std::path::{Path, PathBuf};

use candle_core::Var;
use ferrotune_config::Experiment;
use ferrotune_home::RunDir;
use ferrotune_model::lora::LoraSpec;
use ferrotune_model::Llama;

use crate::error::Result;

/// The trained weights of a run.
#[derive(Debug, Clone)]
pub enum Trained {
    /// LoRA adapters; `base_model` is what `adapter_config.json` names.
    Adapters { spec: LoraSpec, base_model: String },
    /// Full fine-tuning; `source` is the backbone folder (its config and tokenizer files are copied) and
    /// `frozen` the `training.freeze_layers` names.
    Full {
        source: PathBuf,
        frozen: Vec<String>,
    },
}

impl Trained {
    /// What `cfg` trains on the backbone folder `source`.
    pub fn of(cfg: &Experiment, source: &Path) -> Trained {
        if cfg.training.lora {
            Trained::Adapters {
                spec: crate::settings::lora_spec(cfg),
                base_model: source.display().to_string(),
            }
        } else {
            Trained::Full {
                source: source.to_path_buf(),
                frozen: cfg.training.freeze_layers.clone(),
            }
        }
    }

    /// Whether every backbone weight not frozen is trained.
    pub fn is_full(&self) -> bool {
        matches!(self, Trained::Full { .. })
    }

    /// The trainable variables with their names (PEFT's key names, or Hugging Face's weight names). Full
    /// fine-tuning turns the model's weights into variables first (once; later calls return the same ones).
    pub fn params(&self, model: &mut Llama) -> Result<Vec<(String, Var)>> {
        match self {
            Trained::Adapters { .. } => Ok(ferrotune_model::adapter::lora_parameters(model)),
            Trained::Full { frozen, .. } => Ok(model.train_all(frozen)?),
        }
    }

    /// Writes the trained weights into `dir` (staged and swapped in whole).
    pub fn save(&self, model: &Llama, dir: &Path) -> Result<()> {
        match self {
            Trained::Adapters { spec, base_model } => {
                ferrotune_model::adapter::save_peft(model, spec, base_model, dir)?
            }
            Trained::Full { source, .. } => ferrotune_model::save_hf_folder(model, source, dir)?,
        }
        Ok(())
    }

    /// The folder the finished run keeps them in (`adapter/` or `model/`).
    pub fn folder(&self, run: &RunDir) -> PathBuf {
        match self {
            Trained::Adapters { .. } => run.adapter(),
            Trained::Full { .. } => run.model(),
        }
    }

    /// The folder of the copy kept at the evaluation after `step` (`adapter-step<N>/` or `model-step<N>/`).
    pub fn folder_at_step(&self, run: &RunDir, step: u64) -> PathBuf {
        match self {
            Trained::Adapters { .. } => run.adapter_at_step(step),
            Trained::Full { .. } => run.model_at_step(step),
        }
    }

    /// The name of their folder inside a checkpoint.
    pub fn checkpoint_folder(&self) -> &'static str {
        match self {
            Trained::Adapters { .. } => "adapter",
            Trained::Full { .. } => "model",
        }
    }
}
