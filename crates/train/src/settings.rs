//! The config read as the engine needs it: what this release cannot do, how the backbone is kept in memory
//! (for training and for answering), the LoRA spec, the loop's settings and the prediction group's generation.
//! Each config enum is converted by an exhaustive `From`, so a new variant fails to compile until it is handled.

use ferrotune_config::{BackboneDtype, Experiment, Issue, MixedPrecisionDtype, ProblemType};
use ferrotune_data::batch::PadOptions;
use ferrotune_data::DatasetSettings;
use ferrotune_model::lora::LoraSpec;
use ferrotune_model::{Backbone, DType, Device, GenerationConfig, Quantization, WeightFormat};

use crate::optim::OptimizerConfig;
use crate::trainer::LoopSettings;

/// Everything about a config this release cannot do, each with its setting, as errors before anything runs.
pub fn unsupported(cfg: &Experiment) -> Vec<Issue> {
    let mut out = Vec::new();
    let mut no = |cond: bool, key: &str, msg: &str| {
        if cond {
            out.push(Issue::new(key, msg));
        }
    };
    match cfg.problem_type {
        ProblemType::TextCausalLanguageModeling => {}
        ProblemType::TextCausalClassificationModeling
        | ProblemType::TextCausalRegressionModeling => {
            let head = format!("with `problem_type: {}`", cfg.problem_type);
            no(
                cfg.training.sample_packing,
                "training.sample_packing",
                &format!("is not available {head}: each batch already runs as one padding-free row; turn it off"),
            );
            no(
                cfg.augmentation.skip_parent_probability > 0.0
                    || cfg.augmentation.random_parent_probability > 0.0,
                "augmentation.skip_parent_probability",
                &format!(
                    "the parent augmentations are not available {head}; set both probabilities to 0"
                ),
            );
            no(
                cfg.augmentation.token_mask_probability > 0.0,
                "augmentation.token_mask_probability",
                &format!("token masking is not available {head}; set it to 0"),
            );
        }
        ProblemType::TextDpoModeling => {
            let dpo = "with `problem_type: text_dpo_modeling`";
            no(
                cfg.training.sample_packing,
                "training.sample_packing",
                &format!("is not available {dpo}: the pairs of a batch already run as one padding-free row; turn it off"),
            );
            no(
                cfg.augmentation.skip_parent_probability > 0.0
                    || cfg.augmentation.random_parent_probability > 0.0,
                "augmentation.skip_parent_probability",
                &format!(
                    "the parent augmentations are not available {dpo}; set both probabilities to 0"
                ),
            );
            no(
                cfg.augmentation.neftune_noise_alpha > 0.0,
                "augmentation.neftune_noise_alpha",
                &format!("NEFTune is not available {dpo}; set it to 0"),
            );
            no(
                cfg.augmentation.token_mask_probability > 0.0,
                "augmentation.token_mask_probability",
                &format!("token masking is not available {dpo}; set it to 0"),
            );
            no(
                cfg.training.train_validation_data,
                "training.train_validation_data",
                &format!("is not available {dpo} yet; turn it off"),
            );
        }
    }
    if !cfg.training.lora {
        let format = weight_format(cfg);
        no(
            format.quantization != Quantization::None,
            "architecture.backbone_dtype",
            "an int8/int4 backbone cannot be fine-tuned in full: its weights are quantized; set `training.lora: true` (QLoRA), or `architecture.backbone_dtype: float32`",
        );
        no(
            format.quantization == Quantization::None && format.compute != DType::F32,
            "architecture.backbone_dtype",
            "full fine-tuning trains f32 weights in this release; set `architecture.backbone_dtype: float32` and `environment.mixed_precision: false`, or train LoRA adapters (`training.lora: true`)",
        );
        no(
            !cfg.architecture.pretrained_weights.trim().is_empty(),
            "architecture.pretrained_weights",
            "names an adapter, which full fine-tuning has none of; to continue an earlier full fine-tuning, set `llm_backbone` to its `model/` folder",
        );
    }
    no(
        cfg.training.sample_packing
            && (cfg.augmentation.skip_parent_probability > 0.0
                || cfg.augmentation.random_parent_probability > 0.0),
        "training.sample_packing",
        "`training.sample_packing` cannot be combined with the parent augmentations yet; turn one off",
    );
    // `environment.gpus` on the CPU (an H2O file from a GPU machine) draws the config's "has no effect" warning.
    no(
        !cfg.environment.device.starts_with("cpu"),
        "environment.device",
        "training runs on the CPU in this release (`environment.device: cpu`)",
    );
    out
}

/// Sequences one forward and backward pass holds (what the memory estimate counts): a causal-LM batch; for
/// preference tuning one pair's chosen and rejected answers (the pairs run one after another), or the whole
/// batch's for KTO-pair, whose batch means couple the pairs.
pub fn sequences_per_pass(cfg: &Experiment) -> usize {
    let batch = cfg.training.batch_size as usize;
    match cfg.problem_type {
        ProblemType::TextCausalLanguageModeling
        | ProblemType::TextCausalClassificationModeling
        | ProblemType::TextCausalRegressionModeling => batch,
        ProblemType::TextDpoModeling => match cfg.training.loss_function {
            ferrotune_config::LossFunction::KtoPairLoss => 2 * batch,
            _ => 2,
        },
    }
}

/// Every check this crate adds to the config's own (`validate`, `check_environment`) before a run: what this
/// release cannot do ([`unsupported`]) and the data files' columns ([`column_issues`]). `train`, `experiment
/// start`, the studio and `config validate` all run these.
pub fn checks_before_training(cfg: &Experiment) -> Vec<Issue> {
    let mut out = unsupported(cfg);
    out.extend(column_issues(cfg));
    out
}

/// The columns the dataset settings name that the data files lack (only the header or schema is read). Files
/// that do not exist are left to `check_environment`, which names them.
pub fn column_issues(cfg: &Experiment) -> Vec<Issue> {
    let settings = DatasetSettings::from_experiment(cfg);
    let custom = settings.validation_strategy == ferrotune_data::ValidationStrategy::Custom;
    let files_exist = settings.train_dataframe.is_file()
        && (!custom
            || settings
                .validation_dataframe
                .as_deref()
                .is_some_and(|p| p.is_file()));
    if !files_exist {
        return Vec::new();
    }
    match ferrotune_data::check_columns(&settings) {
        Ok(()) => Vec::new(),
        Err(e) => {
            let key = match &e {
                ferrotune_data::Error::MissingColumn { setting, .. } => setting.clone(),
                _ => "dataset.train_dataframe".to_string(),
            };
            let text = e.to_string();
            let (message, help) = match text.split_once("\nhelp: ") {
                Some((m, h)) => (m.to_string(), Some(h.to_string())),
                None => (text, None),
            };
            let issue = Issue::new(key, format!("is not in the data: {message}"));
            vec![match help {
                Some(h) => issue.with_help(h),
                None => issue,
            }]
        }
    }
}

/// How the config keeps the backbone in memory for training. Mixed precision: the frozen backbone computes in
/// the 16-bit dtype while the adapters, their gradients and the optimizer state stay in f32 (the adapters
/// compute in f32 and cast their output). `int8`/`int4` quantize the decoder's linear weights and compute in
/// f32 (or in the mixed-precision dtype).
pub fn weight_format(cfg: &Experiment) -> WeightFormat {
    let mixed = match cfg.environment.mixed_precision_dtype {
        MixedPrecisionDtype::Bfloat16 => DType::BF16,
        MixedPrecisionDtype::Float16 => DType::F16,
    };
    let compute = match (
        cfg.architecture.backbone_dtype,
        cfg.environment.mixed_precision,
    ) {
        (BackboneDtype::Bfloat16, _) => DType::BF16,
        (BackboneDtype::Float16, _) => DType::F16,
        (BackboneDtype::Float32 | BackboneDtype::Int8 | BackboneDtype::Int4, true) => mixed,
        (BackboneDtype::Float32 | BackboneDtype::Int8 | BackboneDtype::Int4, false) => DType::F32,
    };
    let quantization = match cfg.architecture.backbone_dtype {
        BackboneDtype::Int8 => Quantization::Int8,
        BackboneDtype::Int4 => Quantization::Nf4 {
            double_quant: cfg.architecture.double_quantization,
        },
        BackboneDtype::Float32 | BackboneDtype::Bfloat16 | BackboneDtype::Float16 => {
            Quantization::None
        }
    };
    WeightFormat {
        compute,
        quantization,
    }
}

/// How a trained run's backbone is kept for answering (chat, generation, predictions, serving): quantized as it
/// was trained, computing in f32 on the CPU (its fast path: candle's 16-bit CPU ops are composed and slower) and
/// in the training dtype on a GPU.
pub fn inference_format(cfg: &Experiment, device: &Device) -> WeightFormat {
    let trained = weight_format(cfg);
    WeightFormat {
        compute: if device.is_cpu() {
            DType::F32
        } else {
            trained.compute
        },
        quantization: trained.quantization,
    }
}

/// The LoRA adapters the config asks for.
pub fn lora_spec(cfg: &Experiment) -> LoraSpec {
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
pub fn loop_settings(cfg: &Experiment, padding: PadOptions) -> LoopSettings {
    let t = &cfg.training;
    LoopSettings {
        batch_size: t.batch_size as usize,
        epochs: t.epochs as usize,
        grad_accumulation: t.grad_accumulation as usize,
        optimizer: OptimizerConfig::new(t.optimizer.into(), t.weight_decay),
        learning_rate: t.learning_rate,
        differential_learning_rate_layers: t.differential_learning_rate_layers.clone(),
        differential_learning_rate: t.differential_learning_rate,
        schedule: t.schedule.into(),
        warmup_epochs: t.warmup_epochs,
        min_learning_rate_ratio: t.min_learning_rate_ratio,
        gradient_clip: t.gradient_clip,
        loss: t.loss_function.into(),
        seed: cfg.environment.seed.max(0) as u64,
        neftune_noise_alpha: cfg.augmentation.neftune_noise_alpha,
        intermediate_dropout: cfg.architecture.intermediate_dropout,
        gradient_checkpointing: cfg.architecture.gradient_checkpointing,
        token_mask_probability: cfg.augmentation.token_mask_probability,
        evaluation_epochs: t.evaluation_epochs,
        evaluate_before_training: t.evaluate_before_training,
        padding,
        sample_packing: t.sample_packing,
        drop_last_batch: t.drop_last_batch,
    }
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
        max_time: (p.max_time > 0.0).then(|| std::time::Duration::from_secs_f64(p.max_time)),
        ..backbone.generation_config()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_holds_a_batch_or_one_pair() {
        let mut cfg = Experiment::default();
        cfg.training.batch_size = 4;
        assert_eq!(sequences_per_pass(&cfg), 4);
        cfg.switch_problem_type(ProblemType::TextDpoModeling);
        assert_eq!(sequences_per_pass(&cfg), 2);
        cfg.training.loss_function = ferrotune_config::LossFunction::KtoPairLoss;
        assert_eq!(sequences_per_pass(&cfg), 8);
    }
}
