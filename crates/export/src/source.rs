//! What an export reads from a run: its settings, the float backbone folder, the trained weights (a PEFT
//! adapter on the backbone, or a fully fine-tuned `model/`), a classification/regression head, its metrics.

use std::path::{Path, PathBuf};

use ferrotune_config::{BackboneDtype, Experiment};
use ferrotune_home::{Event, Home, RunDir, RunStatus};
use ferrotune_train::head::{Head, LABEL_MAPPING_FILE};

use crate::error::{Error, Result};

/// A finished (or stopped) run, resolved for export.
pub struct RunSource {
    pub run: RunDir,
    pub config: Experiment,
    /// The float Hugging Face folder the weights are merged into (the backbone, or a full fine-tuning's model).
    pub base: PathBuf,
    /// The backbone folder (for its tokenizer, chat template and model card); equals `base` unless a full
    /// fine-tuning's model is the base.
    pub backbone: PathBuf,
    /// The PEFT adapter to merge, when the run trained one.
    pub adapter: Option<PathBuf>,
    /// The head of a classification or regression run.
    pub head: Option<Head>,
    /// The run's status when exported (`finished`, `stopped`, `failed`).
    pub status: Option<RunStatus>,
    /// The last evaluation: (metric name, value, validation loss).
    pub final_metric: Option<(String, f64, f64)>,
}

impl RunSource {
    /// Resolves the run in `run` (its output folder).
    pub fn resolve(run: &RunDir, home: &Home) -> Result<RunSource> {
        if !run.config().is_file() {
            return Err(Error::NotARun {
                path: run.root().to_path_buf(),
            });
        }
        let status = run.read_status();
        if let Some(s) = &status {
            if matches!(s.status, RunStatus::Running | RunStatus::Queued)
                && s.pid.is_none_or(pid_alive)
            {
                return Err(Error::StillRunning {
                    path: run.root().to_path_buf(),
                    status: s.status.name(),
                });
            }
        }
        let config = Experiment::load(&run.config()).map_err(|e| Error::Config(e.to_string()))?;
        if !run.has_adapter() && !run.has_model() {
            return Err(Error::NoTrainedWeights {
                path: run.root().to_path_buf(),
            });
        }
        let backbone = ferrotune_train::load::resolve_backbone(&config, home, &mut |_| {})?;
        if !backbone.exists() {
            return Err(Error::BackboneGone {
                run: run.root().to_path_buf(),
                backbone,
            });
        }
        let backbone = ferrotune_model::backbone::resolve_folder(&backbone, &home.backbones())?;
        let (base, adapter) = if run.has_model() {
            (run.model(), None)
        } else {
            (backbone.clone(), Some(run.adapter()))
        };
        let weights_dir = adapter.as_deref().unwrap_or(&base);
        let head = if weights_dir.join(LABEL_MAPPING_FILE).is_file() {
            Some(Head::load(weights_dir)?)
        } else {
            None
        };
        let final_metric = run.read_events().into_iter().rev().find_map(|e| match e {
            Event::Evaluation {
                metric_name,
                metric,
                validation_loss,
                ..
            } => Some((metric_name, metric, validation_loss)),
            _ => None,
        });
        Ok(RunSource {
            run: run.clone(),
            config,
            base,
            backbone,
            adapter,
            head,
            status: status.map(|s| s.status),
            final_metric,
        })
    }

    /// The experiment's name (`experiment_name`, else the folder's name).
    pub fn name(&self) -> String {
        let n = self.config.experiment_name.trim();
        if n.is_empty() {
            self.run
                .root()
                .file_name()
                .map_or("model".into(), |n| n.to_string_lossy().into_owned())
        } else {
            n.to_string()
        }
    }

    /// Whether the run trained on a quantized (int8/int4) backbone.
    pub fn quantized(&self) -> bool {
        matches!(
            self.config.architecture.backbone_dtype,
            BackboneDtype::Int8 | BackboneDtype::Int4
        )
    }
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
pub(crate) fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// The folder a run's export file names start from: the name without characters file systems dislike.
pub fn file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        "model".into()
    } else {
        s
    }
}

/// Bytes free to this user on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out-pointer.
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0)
        .then(|| st.f_bavail as u64 * st.f_frsize as u64)
}
