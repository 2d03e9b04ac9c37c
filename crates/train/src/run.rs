//! One experiment from its config to its output directory: pre-flight checks, data, backbone and adapters, the
//! loop, evaluations, checkpoints, the final adapter, and the files a run leaves behind:
//!
//! ```text
//! OUTPUT_DIR/
//!   cfg.yaml                    the resolved config (generated name and drawn seed filled in)
//!   status.json                 {"status": running|finished|failed|stopped, "message": …}
//!   logs.log                    human-readable log
//!   metrics.jsonl               one event per line (train steps, evaluations, checkpoints)
//!   first_batch.json            the first training batch, decoded, with masked labels marked
//!   validation_predictions.csv  prompt, target, prediction, per-sample metric (final evaluation)
//!   adapter/                    the LoRA adapter in PEFT's format (per `training.save_checkpoint`)
//!   checkpoint/                 resume state: adapter, optimizer moments, position
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use ferrotune_config::{
    BackboneDtype, Experiment, Metric as CfgMetric, ProblemType, Report, SaveCheckpoint,
};
use ferrotune_data::batch::PadOptions;
use ferrotune_data::{DatasetSettings, Sample, TextTokenizer, ValidationStrategy};
use ferrotune_model::lora::LoraSpec;
use ferrotune_model::{
    Backbone, DType, Device, GenerationConfig, Llama, Quantization, WeightFormat,
};
use serde::Serialize;

use crate::checkpoint::{self, CheckpointState};
use crate::error::{Error, Result};
use crate::eval::{evaluate, write_predictions, Metric};
use crate::events::{Event, Listener};
use crate::loss::LossKind;
use crate::memory::{self, MemoryEstimate, RunShape};
use crate::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use crate::schedule::ScheduleKind;
use crate::trainer::{self, Hooks, LoopSettings, Outcome, Position};

/// How to run an experiment.
pub struct RunRequest<'a> {
    /// The config with `experiment_name` and `seed` settled (see `Experiment::fill_generated`).
    pub config: &'a Experiment,
    /// The backbone folder or `.gguf` file (the CLI resolves an empty `llm_backbone` to the demo backbone).
    pub backbone: PathBuf,
    /// Where `.gguf` backbones are imported.
    pub gguf_cache: PathBuf,
    /// Continue from `OUTPUT_DIR/checkpoint`.
    pub resume: bool,
    /// Raised to stop gracefully (a checkpoint is written first).
    pub stop: &'a AtomicBool,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub output_dir: PathBuf,
    pub status: &'static str,
    pub steps: u64,
    pub validation_loss: Option<f64>,
    pub metric_name: &'static str,
    pub metric: Option<f64>,
    pub adapter_dir: Option<PathBuf>,
}

/// Everything about a config this release cannot do, as errors before anything runs.
pub fn unsupported(cfg: &Experiment) -> Vec<String> {
    let mut out = Vec::new();
    let mut no = |cond: bool, msg: &str| {
        if cond {
            out.push(msg.to_string());
        }
    };
    no(
        cfg.problem_type != ProblemType::TextCausalLanguageModeling,
        "only `problem_type: text_causal_language_modeling` is available in this release",
    );
    no(!cfg.training.lora, "full fine-tuning (`training.lora: false`) is not available; train LoRA adapters (`training.lora: true`)");
    no(
        cfg.training.sample_packing
            && (cfg.augmentation.skip_parent_probability > 0.0
                || cfg.augmentation.random_parent_probability > 0.0),
        "`training.sample_packing` cannot be combined with the parent augmentations yet; turn one off",
    );
    no(cfg.prediction.metric == CfgMetric::Gpt, "the GPT judge metric comes in a later release; use `prediction.metric: Perplexity` or `BLEU`");
    no(
        !cfg.environment.gpus.is_empty(),
        "`environment.gpus` must be empty: training runs on the CPU in this release",
    );
    no(
        !cfg.environment.device.starts_with("cpu"),
        "training runs on the CPU in this release (`environment.device: cpu`)",
    );
    out
}

/// How the config keeps the backbone in memory. Mixed precision: the frozen backbone computes in the 16-bit
/// dtype while the adapters, their gradients and the optimizer state stay in f32 (the adapters compute in f32
/// and cast their output). `int8`/`int4` quantize the decoder's linear weights and compute in f32 (or in the
/// mixed-precision dtype).
pub fn weight_format(cfg: &Experiment) -> WeightFormat {
    let mixed = match cfg.environment.mixed_precision_dtype {
        ferrotune_config::MixedPrecisionDtype::Bfloat16 => DType::BF16,
        ferrotune_config::MixedPrecisionDtype::Float16 => DType::F16,
    };
    let compute = match (
        cfg.architecture.backbone_dtype,
        cfg.environment.mixed_precision,
    ) {
        (BackboneDtype::Bfloat16, _) => DType::BF16,
        (BackboneDtype::Float16, _) => DType::F16,
        (_, true) => mixed,
        _ => DType::F32,
    };
    let quantization = match cfg.architecture.backbone_dtype {
        BackboneDtype::Int8 => Quantization::Int8,
        BackboneDtype::Int4 => Quantization::Nf4 {
            double_quant: cfg.architecture.double_quantization,
        },
        _ => Quantization::None,
    };
    WeightFormat {
        compute,
        quantization,
    }
}

/// The data settings of a config.
pub fn dataset_settings(cfg: &Experiment) -> DatasetSettings {
    let d = &cfg.dataset;
    let column = |c: &str| (!c.is_empty() && c != "None").then(|| c.to_string());
    DatasetSettings {
        train_dataframe: ferrotune_config::expand_path(&d.train_dataframe),
        validation_strategy: match d.validation_strategy {
            ferrotune_config::ValidationStrategy::Automatic => ValidationStrategy::Automatic,
            ferrotune_config::ValidationStrategy::Custom => ValidationStrategy::Custom,
        },
        validation_dataframe: (!d.validation_dataframe.is_empty())
            .then(|| ferrotune_config::expand_path(&d.validation_dataframe)),
        validation_size: d.validation_size,
        data_sample: d.data_sample,
        data_sample_choice: d
            .data_sample_choice
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
        system_column: column(&d.system_column),
        prompt_column: d.prompt_column.clone(),
        prompt_column_separator: d.prompt_column_separator.clone(),
        answer_column: d.answer_column.clone(),
        parent_id_column: column(&d.parent_id_column),
        id_column: column(&d.id_column),
        text_system_start: d.text_system_start.clone(),
        text_prompt_start: d.text_prompt_start.clone(),
        text_answer_separator: d.text_answer_separator.clone(),
        add_eos_token_to_system: d.add_eos_token_to_system,
        add_eos_token_to_prompt: d.add_eos_token_to_prompt,
        add_eos_token_to_answer: d.add_eos_token_to_answer,
        limit_chained_samples: d.limit_chained_samples,
        mask_prompt_labels: d.mask_prompt_labels,
        only_last_answer: d.only_last_answer,
        use_chat_template: d.use_chat_template,
        max_length: cfg.tokenizer.max_length as usize,
        padding_quantile: cfg.tokenizer.padding_quantile,
        seed: cfg.environment.seed.max(0) as u64,
        skip_parent_probability: cfg.augmentation.skip_parent_probability,
        random_parent_probability: cfg.augmentation.random_parent_probability,
        epochs: cfg.training.epochs as usize,
        workers: cfg.environment.number_of_workers as usize,
    }
}

fn lora_spec(cfg: &Experiment) -> LoraSpec {
    let t = &cfg.training;
    LoraSpec {
        r: t.lora_r as usize,
        alpha: t.lora_alpha as f64,
        dropout: t.lora_dropout as f32,
        use_rslora: t.use_rslora,
        use_dora: t.use_dora,
        target_modules: t
            .lora_target_modules
            .iter()
            .map(|m| m.as_str().to_string())
            .collect(),
    }
}

/// The loop settings of a config.
pub fn loop_settings(cfg: &Experiment, padding: PadOptions) -> Result<LoopSettings> {
    let t = &cfg.training;
    Ok(LoopSettings {
        batch_size: t.batch_size as usize,
        epochs: t.epochs as usize,
        grad_accumulation: t.grad_accumulation as usize,
        optimizer: OptimizerConfig::new(
            OptimizerKind::parse(t.optimizer.as_str())?,
            t.weight_decay,
        ),
        learning_rate: t.learning_rate,
        differential_learning_rate_layers: t.differential_learning_rate_layers.clone(),
        differential_learning_rate: t.differential_learning_rate,
        schedule: ScheduleKind::parse(t.schedule.as_str())?,
        warmup_epochs: t.warmup_epochs,
        min_learning_rate_ratio: t.min_learning_rate_ratio,
        gradient_clip: t.gradient_clip,
        loss: LossKind::parse(t.loss_function.as_str())?,
        seed: cfg.environment.seed.max(0) as u64,
        neftune_noise_alpha: cfg.augmentation.neftune_noise_alpha,
        intermediate_dropout: cfg.architecture.intermediate_dropout,
        gradient_checkpointing: cfg.architecture.gradient_checkpointing,
        token_mask_probability: cfg.augmentation.token_mask_probability,
        evaluation_epochs: t.evaluation_epochs,
        evaluate_before_training: t.evaluate_before_training,
        padding,
        sample_packing: t.sample_packing,
    })
}

/// The generation settings of the config's prediction group.
pub fn prediction_config(cfg: &Experiment, backbone: &Backbone) -> GenerationConfig {
    let p = &cfg.prediction;
    let mut stop_strings: Vec<String> = p
        .stop_tokens
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    stop_strings.push(cfg.dataset.text_prompt_start.clone());
    GenerationConfig {
        max_new_tokens: p.max_length_inference as usize,
        min_new_tokens: (p.min_length_inference as usize).min(p.max_length_inference as usize),
        temperature: if p.do_sample {
            p.temperature.max(1e-6)
        } else {
            0.0
        },
        top_k: (p.top_k > 0).then_some(p.top_k as usize),
        top_p: (p.top_p < 1.0).then_some(p.top_p),
        repetition_penalty: p.repetition_penalty,
        num_beams: p.num_beams.max(1) as usize,
        seed: cfg.environment.seed.max(0) as u64,
        stop_strings,
        ..backbone.generation_config()
    }
}

/// Appends to `logs.log` and `metrics.jsonl`, and forwards every event to the caller's listener.
struct RunFiles<'a> {
    dir: PathBuf,
    log: std::fs::File,
    metrics: std::fs::File,
    listener: &'a mut dyn Listener,
}

impl RunFiles<'_> {
    fn emit(&mut self, event: Event) {
        if let Ok(line) = serde_json::to_string(&event) {
            let _ = writeln!(self.metrics, "{line}");
        }
        let text = match &event {
            Event::Log { message } => message.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        };
        let _ = writeln!(self.log, "{text}");
        self.listener.on_event(&event);
    }
}

fn open_append(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
}

/// Writes `status.json` atomically.
pub fn write_status(dir: &Path, status: &str, message: &str) -> Result<()> {
    let path = dir.join("status.json");
    let tmp = dir.join("status.json.tmp");
    let json =
        serde_json::json!({ "status": status, "message": message, "pid": std::process::id() });
    std::fs::write(&tmp, json.to_string()).map_err(|source| Error::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &path).map_err(|source| Error::Io { path, source })
}

struct RunHooks<'a, 'b> {
    files: &'a mut RunFiles<'b>,
    tokenizer: &'a TextTokenizer,
    validation: &'a [Sample],
    eval_padding: PadOptions,
    eval_batch: usize,
    metric: Metric,
    generation: GenerationConfig,
    total_micro_steps: u64,
    spec: LoraSpec,
    base_model: String,
    save: SaveCheckpoint,
    seed: u64,
    best: Option<(f64, u64)>,
    last: Option<(f64, f64)>,
}

impl Hooks for RunHooks<'_, '_> {
    fn evaluate(&mut self, model: &Llama, pos: Position, epoch: f64) -> Result<()> {
        let last_eval = pos.micro_step == self.total_micro_steps;
        if let Some(peak) = memory::peak_resident().filter(|_| pos.micro_step > 0) {
            self.files.emit(Event::Log {
                message: format!(
                    "peak resident memory before this evaluation: {}",
                    memory::gib(peak)
                ),
            });
        }
        // Answers are generated for BLEU at every evaluation, and for the predictions file at the last one.
        let generate = self.metric == Metric::Bleu || last_eval;
        let ev = evaluate(
            model,
            self.tokenizer,
            self.validation,
            &self.eval_padding,
            self.eval_batch,
            self.metric,
            generate.then_some(&self.generation),
        )?;
        if last_eval {
            write_predictions(
                &self.files.dir.join("validation_predictions.csv"),
                self.metric,
                &ev.predictions,
            )?;
        }
        self.last = Some((ev.loss, ev.metric));
        self.files.emit(Event::Evaluation {
            step: pos.optimizer_step,
            epoch,
            validation_loss: ev.loss,
            perplexity: ev.perplexity,
            metric_name: self.metric.name().into(),
            metric: ev.metric,
        });
        if pos.micro_step > 0
            && self
                .best
                .is_none_or(|(b, _)| self.metric.better(ev.metric, b))
        {
            self.best = Some((ev.metric, pos.optimizer_step));
            if self.save == SaveCheckpoint::Best {
                ferrotune_model::adapter::save_peft(
                    model,
                    &self.spec,
                    &self.base_model,
                    &self.files.dir.join("adapter"),
                )?;
            }
        }
        if self.save == SaveCheckpoint::EachEvaluationEpoch && pos.micro_step > 0 {
            let dir = self
                .files
                .dir
                .join(format!("adapter-step{}", pos.optimizer_step));
            ferrotune_model::adapter::save_peft(model, &self.spec, &self.base_model, &dir)?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, model: &Llama, optimizer: &Optimizer, pos: Position) -> Result<()> {
        let state = CheckpointState {
            position: pos,
            optimizer_steps: optimizer.steps(),
            seed: self.seed,
            best_metric: self.best,
        };
        let path = checkpoint::save(
            &self.files.dir,
            model,
            &self.spec,
            &self.base_model,
            optimizer,
            &state,
        )?;
        self.files.emit(Event::Checkpoint {
            step: pos.optimizer_step,
            path: path.display().to_string(),
        });
        Ok(())
    }

    fn event(&mut self, event: &Event) {
        self.files.emit(event.clone());
    }
}

/// Runs (or resumes) an experiment; the returned summary is also what `status.json` says at the end.
pub fn run(request: RunRequest, listener: &mut dyn Listener) -> Result<RunSummary> {
    let cfg = request.config;
    let dir = cfg.output_dir();
    // Before the run writes its own files into the folder, which would draw the not-empty warning.
    let report = preflight(cfg, request.resume);
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let mut files = RunFiles {
        log: open_append(&dir.join("logs.log"))?,
        metrics: open_append(&dir.join("metrics.jsonl"))?,
        dir: dir.clone(),
        listener,
    };
    write_status(&dir, "running", "")?;
    let result = run_inner(&request, report, &mut files);
    let (status, message) = match &result {
        Ok(s) => (s.status, String::new()),
        Err(e) => ("failed", e.to_string()),
    };
    if let Err(e) = &result {
        files.emit(Event::Log {
            message: format!("error: {e}"),
        });
    }
    write_status(&dir, status, &message)?;
    result
}

/// Pre-flight: every setting, then the files, backbone, output folder and disk they name. A resumed run
/// continues the files in its folder, so that the folder is not empty is no warning then.
fn preflight(cfg: &Experiment, resume: bool) -> Report {
    let mut report = ferrotune_config::validate(cfg);
    report.extend(ferrotune_config::check_environment(cfg));
    if resume {
        report.warnings.retain(|w| w.key != "output_directory");
    }
    report
}

fn run_inner(request: &RunRequest, report: Report, files: &mut RunFiles) -> Result<RunSummary> {
    let cfg = request.config;
    for w in &report.warnings {
        files.emit(Event::Log {
            message: format!("warning: `{}`: {}", w.key, w.message),
        });
    }
    let mut problems: Vec<String> = report
        .errors
        .iter()
        .map(|i| match &i.help {
            Some(help) => format!("`{}`: {}\nhelp: {help}", i.key, i.message),
            None => format!("`{}`: {}", i.key, i.message),
        })
        .collect();
    problems.extend(unsupported(cfg));
    if !problems.is_empty() {
        return Err(Error::Setting(problems.join("\n")));
    }
    let dir = files.dir.clone();
    cfg.save(&dir.join("cfg.yaml"))
        .map_err(|e| Error::Setting(e.to_string()))?;
    let format = weight_format(cfg);
    let backbone_dir =
        ferrotune_model::backbone::resolve_folder(&request.backbone, &request.gguf_cache)?;
    let estimate = MemoryEstimate::estimate(
        &ferrotune_model::ModelConfig::from_dir(&backbone_dir)?,
        &RunShape {
            compute: format.compute,
            quantization: format.quantization,
            lora: &lora_spec(cfg),
            batch_size: cfg.training.batch_size as usize,
            max_length: cfg.tokenizer.max_length as usize,
            gradient_checkpointing: cfg.architecture.gradient_checkpointing,
        },
    );
    files.emit(Event::Log {
        message: estimate.describe(),
    });
    if let Some(available) = memory::available_memory().filter(|&a| estimate.total() > a) {
        files.emit(Event::Log {
            message: format!(
                "warning: the estimate exceeds the {} this machine has available; if the run is killed, use \
                 `architecture.backbone_dtype: int4`, `architecture.gradient_checkpointing: true`, or a smaller \
                 `training.batch_size` / `tokenizer.max_length`",
                memory::gib(available)
            ),
        });
    }
    files.emit(Event::Log {
        message: format!("loading backbone {}", request.backbone.display()),
    });
    let mut backbone = Backbone::load(&backbone_dir, format, &Device::Cpu, &request.gguf_cache)?;
    let (linear_bytes, other_bytes) = backbone.model.frozen_weight_bytes();
    files.emit(Event::Log {
        message: format!(
            "frozen weights in memory: {} (decoder linear weights {} as {:?}, embedding, head and norms {} as {:?})",
            memory::mib((linear_bytes + other_bytes) as u64),
            memory::mib(linear_bytes as u64),
            format.quantization,
            memory::mib(other_bytes as u64),
            format.compute
        ),
    });
    let data_settings = dataset_settings(cfg);
    files.emit(Event::Log {
        message: format!("preparing data {}", data_settings.train_dataframe.display()),
    });
    let mut data = ferrotune_data::prepare(&data_settings, &backbone.tokenizer)?;
    if cfg.training.train_validation_data {
        // H2O's `train_validation_data`: train on the validation samples too (evaluation still uses them).
        let validation = data.validation.clone();
        data.train.extend(validation.iter().cloned());
        for epoch in data.train_epochs.iter_mut().flatten() {
            epoch.extend(validation.iter().cloned());
        }
    }
    for w in &data.stats.warnings {
        files.emit(Event::Log {
            message: format!("warning: {w}"),
        });
    }
    files.emit(Event::Log {
        message: format!(
            "{} training samples, {} validation samples",
            data.train.len(),
            data.validation.len()
        ),
    });
    let padding = PadOptions::train(&data_settings, &backbone.tokenizer)?;
    let settings = loop_settings(cfg, padding)?;
    let rows = trainer::packed_rows(&data.train, &settings);
    let units = rows.as_ref().map_or(data.train.len(), Vec::len);
    let plan = settings.plan(units);
    if let Some(first) = settings.sampler(units).batch(Default::default()) {
        let batch = match &rows {
            Some(rows) => {
                ferrotune_data::batch::collate_packed(&data.train, rows, &first, &settings.padding)
            }
            None => ferrotune_data::batch::collate(&data.train, &first, &settings.padding),
        };
        ferrotune_data::save_first_batch(
            &batch,
            &backbone.tokenizer,
            &dir.join("first_batch.json"),
        )?;
    }
    let spec = lora_spec(cfg);
    let seed = settings.seed;
    let (start, optimizer_state, best) = if request.resume {
        let loaded = checkpoint::load(&dir, &Device::Cpu)?;
        if loaded.state.seed != seed {
            return Err(Error::Checkpoint {
                path: dir.clone(),
                message: format!(
                    "was written with seed {}, the config says {seed}",
                    loaded.state.seed
                ),
            });
        }
        ferrotune_model::adapter::load_peft(&mut backbone.model, &loaded.adapter_dir)?;
        files.emit(Event::Log {
            message: format!("resuming at step {}", loaded.state.position.optimizer_step),
        });
        (
            loaded.state.position,
            Some((loaded.optimizer_state, loaded.state.optimizer_steps)),
            loaded.state.best_metric,
        )
    } else {
        if cfg.architecture.pretrained_weights.trim().is_empty() {
            ferrotune_model::adapter::attach_lora(&mut backbone.model, &spec, seed)?;
        } else {
            // Start from an earlier run's adapter (its folder or its output directory), with its own r/alpha.
            let from = ferrotune_config::expand_path(&cfg.architecture.pretrained_weights);
            let loaded = ferrotune_model::adapter::load_peft(&mut backbone.model, &from)?;
            if loaded.r != spec.r || loaded.use_dora != spec.use_dora {
                return Err(Error::Setting(format!(
                    "`architecture.pretrained_weights` holds a LoRA adapter with r={} (DoRA: {}), the config asks for r={} (DoRA: {})\nhelp: set `training.lora_r` and `training.use_dora` to the adapter's values",
                    loaded.r, loaded.use_dora, spec.r, spec.use_dora
                )));
            }
            files.emit(Event::Log {
                message: format!("starting from the adapter in {}", from.display()),
            });
        }
        (
            Position {
                micro_step: 0,
                optimizer_step: 0,
            },
            None,
            None,
        )
    };
    let mut optimizer = Optimizer::new(
        settings.optimizer,
        trainer::trainable_params(&backbone.model, &settings),
    );
    if let Some((state, steps)) = optimizer_state {
        optimizer.load_state(state, steps);
    }
    let base_model = request.backbone.display().to_string();
    let metric = if cfg.prediction.metric == CfgMetric::Bleu {
        Metric::Bleu
    } else {
        Metric::Perplexity
    };
    let eval_batch = match cfg.prediction.batch_size_inference {
        0 => settings.batch_size,
        n => n as usize,
    };
    let mut hooks = RunHooks {
        files,
        tokenizer: &backbone.tokenizer,
        validation: &data.validation,
        eval_padding: PadOptions::eval(&data_settings, &backbone.tokenizer)?,
        eval_batch,
        metric,
        generation: prediction_config(cfg, &backbone),
        total_micro_steps: plan.total_micro_steps,
        spec: spec.clone(),
        base_model: base_model.clone(),
        save: cfg.training.save_checkpoint,
        seed,
        best,
        last: None,
    };
    let (outcome, pos) = trainer::train(
        &backbone.model,
        &data,
        &settings,
        &mut optimizer,
        start,
        request.stop,
        &mut hooks,
    )?;
    let status = match outcome {
        Outcome::Finished => "finished",
        Outcome::Stopped => {
            hooks.checkpoint(&backbone.model, &optimizer, pos)?;
            "stopped"
        }
    };
    if let Some(peak) = memory::peak_resident() {
        hooks.files.emit(Event::Log {
            message: format!("peak resident memory of the run: {}", memory::gib(peak)),
        });
    }
    let adapter_dir = dir.join("adapter");
    if outcome == Outcome::Finished
        && matches!(
            cfg.training.save_checkpoint,
            SaveCheckpoint::Last | SaveCheckpoint::EachEvaluationEpoch
        )
    {
        ferrotune_model::adapter::save_peft(&backbone.model, &spec, &base_model, &adapter_dir)?;
    }
    Ok(RunSummary {
        output_dir: dir.clone(),
        status,
        steps: pos.optimizer_step,
        validation_loss: hooks.last.map(|l| l.0),
        metric_name: metric.name(),
        metric: hooks.last.map(|l| l.1),
        adapter_dir: adapter_dir
            .join("adapter_config.json")
            .is_file()
            .then_some(adapter_dir),
    })
}
