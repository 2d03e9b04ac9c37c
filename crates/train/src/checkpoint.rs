//! Resumable checkpoints: `checkpoint/` in the run's output directory holds the adapter (PEFT format), the
//! optimizer state and the loop position. It is written to a temporary folder and swapped in by renames
//! ([`ferrotune_home::atomic::replace_dir`]), so a crash or a full disk while writing leaves the previous
//! checkpoint intact.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ferrotune_home::{atomic, RunDir};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::Optimizer;
use crate::trainer::Position;

/// What `state.json` of a checkpoint holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointState {
    pub position: Position,
    pub optimizer_steps: u64,
    /// The seed the run uses (the drawn one when the config said -1).
    pub seed: u64,
    /// Best validation metric so far and the step it was reached at.
    pub best_metric: Option<(f64, u64)>,
    /// Evaluations since the best one that did not improve on it (early stopping's count).
    #[serde(default)]
    pub evaluations_since_best: u32,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a checkpoint — the trained weights (`save_weights` writes them into the folder `folder` of the
/// checkpoint), the optimizer and `state` — into the run's `checkpoint/`: staged in a temporary sibling and
/// swapped in whole (see [`ferrotune_home::atomic::replace_dir`]).
pub fn save(
    run: &RunDir,
    folder: &str,
    save_weights: &dyn Fn(&Path) -> Result<()>,
    optimizer: &Optimizer,
    state: &CheckpointState,
) -> Result<PathBuf> {
    let final_dir = run.checkpoint();
    let tmp = atomic::temp_sibling(&final_dir);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let write = || -> Result<()> {
        save_weights(&tmp.join(folder))?;
        let (tensors, _) = optimizer.state();
        let path = tmp.join("optimizer.safetensors");
        if tensors.is_empty() {
            std::fs::write(&path, b"").map_err(io(&path))?;
        } else {
            ferrotune_model::weights::save_safetensors(&tensors, &path)?;
        }
        let json = serde_json::to_string_pretty(state).map_err(|e| Error::Checkpoint {
            path: tmp.clone(),
            message: e.to_string(),
        })?;
        let path = tmp.join("state.json");
        std::fs::write(&path, json).map_err(io(&path))?;
        atomic::replace_dir(&tmp, &final_dir).map_err(io(&final_dir))
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(final_dir)
}

/// A loaded checkpoint: the state, and the optimizer tensors to hand to [`Optimizer::load_state`].
pub struct Loaded {
    pub state: CheckpointState,
    pub optimizer_state: HashMap<String, Tensor>,
    /// The folder of the trained weights (the adapter, or the whole model).
    pub weights_dir: PathBuf,
}

/// Finds and reads the checkpoint of `output_dir` (falling back to the previous one if a swap was cut short);
/// its trained weights are in its `folder`.
pub fn load(run: &RunDir, folder: &str, device: &Device) -> Result<Loaded> {
    let mut dir = run.checkpoint();
    if !dir.join("state.json").is_file() {
        let old = run.checkpoint_backup();
        if old.join("state.json").is_file() {
            dir = old;
        } else {
            return Err(Error::Checkpoint {
                path: dir,
                message: "no checkpoint to resume from\nhelp: a run writes its first checkpoint at its first evaluation (`training.evaluation_epochs`); start the run afresh instead of resuming it".into(),
            });
        }
    }
    let text = std::fs::read_to_string(dir.join("state.json")).map_err(io(&dir))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
        path: dir.clone(),
        message: e.to_string(),
    })?;
    let opt_path = dir.join("optimizer.safetensors");
    let optimizer_state = if std::fs::metadata(&opt_path).map(|m| m.len()).unwrap_or(0) == 0 {
        HashMap::new()
    } else {
        candle_core::safetensors::load(&opt_path, device).map_err(|e| Error::Checkpoint {
            path: opt_path.clone(),
            message: e.to_string(),
        })?
    };
    Ok(Loaded {
        state,
        optimizer_state,
        weights_dir: dir.join(folder),
    })
}
