//! One experiment from its config to its output folder (the files are named in [`ferrotune_home::RunDir`]), in
//! stages: pre-flight checks (before anything is written, so a refused run leaves nothing behind), the backbone,
//! the data, the objective of the problem type, the start position (fresh, from an earlier adapter, or resumed
//! from the checkpoint), the loop, and the finish (checkpoint when stopped, the adapter, the summary).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use ferrotune_config::{Experiment, SaveCheckpoint};
use ferrotune_data::batch::PadOptions;
use ferrotune_data::PreparedData;
use ferrotune_home::{Home, RunDir, RunStatus};
use ferrotune_model::{Backbone, Device};
use serde::Serialize;

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::events::{Event, Listener};
use crate::hooks::{RunFiles, RunHooks};
use crate::load::resolve_backbone;
use crate::memory::{self, MemoryEstimate, RunShape};
use crate::objective::{self, Inputs};
use crate::optim::Optimizer;
use crate::settings::{
    column_issues, loop_settings, lora_spec, prediction_config, unsupported, weight_format,
};
use crate::trained::Trained;
use crate::trainer::{self, Outcome, Position};

/// How to run an experiment.
pub struct RunRequest<'a> {
    /// The config with `experiment_name` and `seed` settled (see `Experiment::fill_generated`) and the demo
    /// defaults filled in (see [`fill_demo_defaults`]).
    pub config: &'a Experiment,
    /// The home: where the demo backbone is and `.gguf` backbones are imported.
    pub home: &'a Home,
    /// Continue from the run's checkpoint.
    pub resume: bool,
    /// Raised to stop gracefully (a checkpoint is written first).
    pub stop: &'a AtomicBool,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub output_dir: PathBuf,
    pub status: RunStatus,
    pub steps: u64,
    pub validation_loss: Option<f64>,
    pub metric_name: &'static str,
    pub metric: Option<f64>,
    pub adapter_dir: Option<PathBuf>,
    /// Full fine-tuning: the trained model (a Hugging Face folder).
    pub model_dir: Option<PathBuf>,
    /// Why the run ended when it did not run to its end (early stopping), else empty.
    pub message: String,
}

/// The embedded default: an empty `llm_backbone` trains the demo backbone (its path is written into the config,
/// so chat and export later load the same one) and an empty `dataset.train_dataframe` the demo data. Returns a
/// note for each default used.
pub fn fill_demo_defaults(
    cfg: &mut Experiment,
    home: &Home,
    progress: ferrotune_home::Progress,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    if cfg.llm_backbone.trim().is_empty() {
        let backbone = resolve_backbone(cfg, home, progress)?;
        cfg.llm_backbone = backbone.display().to_string();
        notes.push(format!(
            "llm_backbone is empty: using the demo backbone {}",
            cfg.llm_backbone
        ));
    }
    if cfg.dataset.train_dataframe.trim().is_empty() {
        let dir =
            ferrotune_home::ensure_demo_datasets(home, progress).map_err(Error::DemoBackbone)?;
        cfg.dataset.train_dataframe = dir.join("alpaca_en_demo.json").display().to_string();
        notes.push(format!(
            "dataset.train_dataframe is empty: using the demo data {}",
            cfg.dataset.train_dataframe
        ));
    }
    Ok(notes)
}

/// Every problem with the config that stops it from running (settings, the files they name, what this release
/// cannot do), each with its setting; the warnings are returned for the log. A resumed run continues the files
/// in its folder, so that the folder is not empty is no warning then.
pub fn preflight(cfg: &Experiment, resume: bool) -> Result<Vec<String>> {
    let mut report = ferrotune_config::validate(cfg);
    report.extend(ferrotune_config::check_environment(cfg));
    if resume {
        report.warnings.retain(|w| w.key != "output_directory");
    }
    let mut problems: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    problems.extend(unsupported(cfg).into_iter().map(|i| i.message));
    problems.extend(column_issues(cfg).iter().map(ToString::to_string));
    if !problems.is_empty() {
        return Err(Error::Setting(problems.join("\n")));
    }
    Ok(report
        .warnings
        .iter()
        .map(|w| format!("warning: `{}`: {}", w.key, w.message))
        .collect())
}

/// Runs (or resumes) an experiment; the returned summary is also what `status.json` says at the end. A config
/// that fails the pre-flight checks is refused before its output folder is touched. The caller makes sure no
/// other process trains the same folder (the CLI checks `status.json`'s pid; the runner runs one at a time).
pub fn run(request: RunRequest, listener: &mut dyn Listener) -> Result<RunSummary> {
    let cfg = request.config;
    let warnings = preflight(cfg, request.resume)?;
    let run = RunDir::new(cfg.output_dir());
    let mut files = RunFiles::open(run.clone(), listener)?;
    let status_io = |source| Error::Io {
        path: run.status(),
        source,
    };
    run.write_status(RunStatus::Running, "")
        .map_err(status_io)?;
    for w in warnings {
        files.log(w);
    }
    // What a killed run left (a checkpoint being staged, a file being written) is of no use: the last complete
    // checkpoint is in place. The caller makes sure no other process trains this folder.
    let removed = run.remove_leftovers().map_err(|source| Error::Io {
        path: run.root().to_path_buf(),
        source,
    })?;
    for path in removed {
        files.log(format!(
            "removed {} left by an interrupted run",
            path.display()
        ));
    }
    let result = run_stages(&request, &mut files);
    let (status, message) = match &result {
        Ok(s) => (s.status, s.message.clone()),
        Err(e) => (RunStatus::Failed, e.to_string()),
    };
    if let Err(e) = &result {
        files.log(format!("error: {e}"));
    }
    files.finish_trackers(&crate::trackers::RunEnd {
        status,
        message: &message,
    });
    run.write_status(status, &message).map_err(status_io)?;
    result
}

fn run_stages(request: &RunRequest, files: &mut RunFiles) -> Result<RunSummary> {
    let cfg = request.config;
    cfg.save(&files.run.config())
        .map_err(|e| Error::Setting(e.to_string()))?;
    let (trackers, notes) = crate::trackers::for_config(cfg, &files.run, request.resume);
    for note in notes {
        files.log(note);
    }
    files.add_trackers(trackers);
    let backbone_path = resolve_backbone(cfg, request.home, &mut |_| {})?;
    let folder =
        ferrotune_model::backbone::resolve_folder(&backbone_path, &request.home.backbones())?;
    let trained = Trained::of(cfg, &folder);
    let resumed = if request.resume {
        Some(checkpoint::load(
            &files.run,
            trained.checkpoint_folder(),
            &Device::Cpu,
        )?)
    } else {
        None
    };
    // A full fine-tuning resumes from the whole model in its checkpoint.
    let weights_from = match &resumed {
        Some(loaded) if trained.is_full() => loaded.weights_dir.clone(),
        _ => folder.clone(),
    };
    // `architecture.pretrained: false`: fresh weights of the backbone's shapes (a resumed run has its own).
    let random = (!cfg.architecture.pretrained && weights_from == folder).then(|| {
        ferrotune_model::weights::RandomInit::for_folder(
            &folder,
            cfg.environment.seed.max(0) as u64,
        )
    });
    let mut backbone = load_backbone(cfg, &weights_from, random, request.home, files)?;
    let data = prepare_data(cfg, &backbone, files)?;
    let data_settings = ferrotune_data::DatasetSettings::from_experiment(cfg);
    let settings = loop_settings(cfg, PadOptions::train(&data_settings, &backbone.tokenizer)?);
    let start = start_position(request, files, &mut backbone, &trained, resumed)?;
    let params = trained.params(&mut backbone.model)?;
    if trained.is_full() {
        let count: usize = params.iter().map(|(_, v)| v.as_tensor().elem_count()).sum();
        files.log(format!(
            "full fine-tuning: {} weight tensors, {count} parameters trained",
            params.len()
        ));
    }
    let objective = objective::for_problem(Inputs {
        config: cfg,
        data: &data,
        tokenizer: &backbone.tokenizer,
        settings: &settings,
        generation: prediction_config(cfg, &backbone),
        hidden_size: backbone.model.config().hidden_size,
    })?;
    for note in objective.notes() {
        files.log(note);
    }
    if let Some(dir) = &start.from {
        objective.restore_own(dir)?;
    }
    let mut optimizer = Optimizer::new(
        settings.optimizer,
        trainer::trainable_params(params, objective.own_params(), &settings),
    );
    if let Some((state, steps)) = start.optimizer {
        optimizer.load_state(state, steps);
    }
    objective.save_first_batch(&files.run.first_batch(), &settings)?;
    let plan = settings.plan(objective.units());
    let mut hooks = RunHooks {
        files,
        objective: objective.as_ref(),
        total_micro_steps: plan.total_micro_steps,
        trained: trained.clone(),
        save: cfg.training.save_checkpoint,
        seed: settings.seed,
        best: start.best,
        last: None,
        patience: cfg.training.early_stopping_patience,
        threshold: cfg.training.early_stopping_threshold,
        since_best: start.since_best,
    };
    let (outcome, pos) = trainer::train(
        &backbone.model,
        objective.as_ref(),
        &settings,
        &mut optimizer,
        start.position,
        request.stop,
        &mut hooks,
    )?;
    let (status, message) = match outcome {
        Outcome::Finished => (RunStatus::Finished, String::new()),
        Outcome::EarlyStopped => {
            let reason = hooks.early_stop_reason(pos.optimizer_step);
            hooks.files.log(reason.clone());
            (RunStatus::Finished, reason)
        }
        Outcome::Stopped => {
            use crate::trainer::Hooks;
            hooks.checkpoint(&backbone.model, &optimizer, pos)?;
            (RunStatus::Stopped, String::new())
        }
    };
    if let Some(bytes) = memory::peak_resident() {
        hooks.files.emit(Event::PeakMemory {
            step: pos.optimizer_step,
            bytes,
            end_of_run: true,
        });
    }
    let run = hooks.files.run.clone();
    // Early stopping already keeps the best evaluation's weights as the result.
    if outcome == Outcome::Finished
        && cfg.training.early_stopping_patience == 0
        && matches!(
            cfg.training.save_checkpoint,
            SaveCheckpoint::Last | SaveCheckpoint::EachEvaluationEpoch
        )
    {
        hooks.save_weights(&backbone.model, &trained.folder(&run))?;
    }
    Ok(RunSummary {
        output_dir: run.root().to_path_buf(),
        status,
        steps: pos.optimizer_step,
        validation_loss: hooks.last.map(|l| l.0),
        metric_name: objective.metric().name(),
        metric: hooks.last.map(|l| l.1),
        adapter_dir: run.has_adapter().then(|| run.adapter()),
        model_dir: run.has_model().then(|| run.model()),
        message,
    })
}

/// Logs the memory estimate (warning when it exceeds what is available) and loads the backbone folder.
fn load_backbone(
    cfg: &Experiment,
    folder: &std::path::Path,
    random: Option<ferrotune_model::weights::RandomInit>,
    home: &Home,
    files: &mut RunFiles,
) -> Result<Backbone> {
    let format = weight_format(cfg);
    let estimate = MemoryEstimate::estimate(
        &ferrotune_model::ModelConfig::from_dir(folder)?,
        &RunShape {
            compute: format.compute,
            quantization: format.quantization,
            lora: &lora_spec(cfg),
            batch_size: crate::settings::sequences_per_pass(cfg),
            max_length: cfg.tokenizer.max_length as usize,
            gradient_checkpointing: cfg.architecture.gradient_checkpointing,
            full_fine_tuning: !cfg.training.lora,
        },
    );
    files.log(estimate.describe());
    if let Some(available) = memory::available_memory().filter(|&a| estimate.total() > a) {
        files.log(format!(
            "warning: the estimate exceeds the {} this machine has available; if the run is killed, use \
             `architecture.backbone_dtype: int4`, `architecture.gradient_checkpointing: true`, or a smaller \
             `training.batch_size` / `tokenizer.max_length`",
            memory::gib(available)
        ));
    }
    match &random {
        Some(init) => files.log(format!(
            "`architecture.pretrained: false`: fresh weights of {}'s shapes (normal, std {}, seed {})",
            folder.display(),
            init.std,
            init.seed
        )),
        None => files.log(format!("loading backbone {}", folder.display())),
    }
    let backbone =
        Backbone::load_initialised(folder, format, &Device::Cpu, &home.backbones(), random)?;
    let (linear_bytes, other_bytes) = backbone.model.frozen_weight_bytes();
    files.log(format!(
        "frozen weights in memory: {} (decoder linear weights {} as {}, embedding, head and norms {} as {:?})",
        memory::mib((linear_bytes + other_bytes) as u64),
        memory::mib(linear_bytes as u64),
        describe_linear(format),
        memory::mib(other_bytes as u64),
        format.compute
    ));
    Ok(backbone)
}

/// Tokenizes the data (and, with `training.train_validation_data`, trains on the validation samples too).
fn prepare_data(
    cfg: &Experiment,
    backbone: &Backbone,
    files: &mut RunFiles,
) -> Result<PreparedData> {
    let data_settings = ferrotune_data::DatasetSettings::from_experiment(cfg);
    files.log(format!(
        "preparing data {}",
        data_settings.train_dataframe.display()
    ));
    let mut data = ferrotune_data::prepare(&data_settings, &backbone.tokenizer)?;
    if cfg.training.train_validation_data {
        // H2O's `train_validation_data`: train on the validation samples too (evaluation still uses them).
        let validation = data.validation.clone();
        data.train.extend(validation.iter().cloned());
        if let Some(targets) = &mut data.targets {
            let labels = targets.validation.clone();
            targets.train.extend(labels);
        }
        for epoch in data.train_epochs.iter_mut().flatten() {
            epoch.extend(validation.iter().cloned());
        }
    }
    for w in &data.stats.warnings {
        files.log(format!("warning: {w}"));
    }
    files.log(format!(
        "{} training samples, {} validation samples",
        data.train.len(),
        data.validation.len()
    ));
    Ok(data)
}

/// Where the loop starts.
struct Start {
    position: Position,
    /// The optimizer's saved state and step count (when resuming).
    optimizer: Option<(std::collections::HashMap<String, candle_core::Tensor>, u64)>,
    best: Option<(f64, u64)>,
    /// Evaluations since the best (early stopping), carried over a resume.
    since_best: u32,
    /// The adapter folder the weights came from (a checkpoint's, or `pretrained_weights`): where an
    /// objective's own weights are restored from.
    from: Option<PathBuf>,
}

/// Attaches the adapters: fresh (seeded), from `architecture.pretrained_weights`, or from the run's checkpoint
/// when resuming (whose seed must be the config's).
fn start_position(
    request: &RunRequest,
    files: &mut RunFiles,
    backbone: &mut Backbone,
    trained: &Trained,
    resumed: Option<checkpoint::Loaded>,
) -> Result<Start> {
    let cfg = request.config;
    let seed = cfg.environment.seed.max(0) as u64;
    if let Some(loaded) = resumed {
        if loaded.state.seed != seed {
            return Err(Error::Checkpoint {
                path: files.run.checkpoint(),
                message: format!(
                    "was written with seed {}, the config says {seed}",
                    loaded.state.seed
                ),
            });
        }
        if !trained.is_full() {
            ferrotune_model::adapter::load_peft(&mut backbone.model, &loaded.weights_dir)?;
        }
        files.log(format!(
            "resuming at step {}",
            loaded.state.position.optimizer_step
        ));
        return Ok(Start {
            position: loaded.state.position,
            optimizer: Some((loaded.optimizer_state, loaded.state.optimizer_steps)),
            best: loaded.state.best_metric,
            since_best: loaded.state.evaluations_since_best,
            from: Some(loaded.weights_dir),
        });
    }
    let mut from = None;
    let spec = match trained {
        Trained::Adapters { spec, .. } => spec,
        // Every weight trains; nothing is attached (`pretrained_weights` is refused before the run).
        Trained::Full { .. } => return Ok(Start::fresh(None)),
    };
    if cfg.architecture.pretrained_weights.trim().is_empty() {
        ferrotune_model::adapter::attach_lora(&mut backbone.model, spec, seed)?;
    } else {
        // Start from an earlier run's adapter (its folder or its output directory), with its own r/alpha.
        let earlier = ferrotune_config::expand_path(&cfg.architecture.pretrained_weights);
        let loaded = ferrotune_model::adapter::load_peft(&mut backbone.model, &earlier)?;
        if loaded.r != spec.r || loaded.use_dora != spec.use_dora {
            return Err(Error::Setting(format!(
                "`architecture.pretrained_weights` holds a LoRA adapter with r={} (DoRA: {}), the config asks for r={} (DoRA: {})\nhelp: set `training.lora_r` and `training.use_dora` to the adapter's values",
                loaded.r, loaded.use_dora, spec.r, spec.use_dora
            )));
        }
        files.log(format!(
            "starting from the adapter in {}",
            earlier.display()
        ));
        // A head saved with the adapter comes along (a run folder holds it in its `adapter/`).
        let dir = if earlier.join("adapter").is_dir() {
            earlier.join("adapter")
        } else {
            earlier
        };
        from = from_dir_with_head(&dir, cfg);
    }
    Ok(Start::fresh(from))
}

impl Start {
    /// The start of a fresh run (its head, if any, restored from `from`).
    fn fresh(from: Option<PathBuf>) -> Start {
        Start {
            position: Position {
                micro_step: 0,
                optimizer_step: 0,
            },
            optimizer: None,
            best: None,
            since_best: 0,
            from,
        }
    }
}

/// `dir`, when it holds a head a head objective can restore.
fn from_dir_with_head(dir: &std::path::Path, cfg: &Experiment) -> Option<PathBuf> {
    (cfg.problem_type.has_head() && dir.join(crate::head::LABEL_MAPPING_FILE).is_file())
        .then(|| dir.to_path_buf())
}

/// How the decoder's linear weights are kept, in words (`int8`, `NF4`, `NF4 with double quantization`, or the
/// compute dtype).
fn describe_linear(format: ferrotune_model::WeightFormat) -> String {
    match format.quantization {
        ferrotune_model::Quantization::None => format!("{:?}", format.compute),
        ferrotune_model::Quantization::Int8 => "int8".into(),
        ferrotune_model::Quantization::Nf4 {
            double_quant: false,
        } => "NF4".into(),
        ferrotune_model::Quantization::Nf4 { double_quant: true } => {
            "NF4 with double quantization".into()
        }
    }
}
