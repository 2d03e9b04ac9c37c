//! Full fine-tuning (`training.lora: false`) end to end on the tiny backbone: every weight trains and the run
//! leaves a whole Hugging Face folder, `training.freeze_layers` keeps named weights as they were, a stopped
//! run resumes to the same weights, a classifier trains its head with the backbone, and the combinations this
//! release cannot train are refused before a run folder exists.

use ferrotune_test_support::{max_tensors_diff, model_fixture, read_f32_tensors};

use crate::common::{assert_trained, experiment, train};

const FULL: &[(&str, &str)] = &[
    ("training.lora", "false"),
    ("training.learning_rate", "0.001"),
    ("training.evaluation_epochs", "0.5"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    FULL.iter().chain(extra).copied().collect()
}

#[test]
fn a_full_fine_tuning_trains_every_weight_and_saves_a_whole_model() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = experiment(
        dir.path(),
        "full",
        &with(&[("training.freeze_layers", "[embed_tokens, layers.0.mlp]")]),
    );
    let ran = train(&cfg, false, None);
    assert_trained(&ran, "full fine-tuning");
    let losses = ran.losses();
    assert!(losses.last().unwrap() < &losses[0], "{losses:?}");
    let model = cfg.output_dir().join("model");
    assert_eq!(ran.summary.model_dir.as_deref(), Some(model.as_path()));
    assert_eq!(ran.summary.adapter_dir, None);
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(model.join(file).is_file(), "{file}");
    }
    let before = read_f32_tensors(&model_fixture("llama3_rope").join("model.safetensors"));
    let after = read_f32_tensors(&model.join("model.safetensors"));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let moved = |name: &str| {
        let (a, b) = (&before[name], &after[name]);
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    assert_eq!(
        moved("model.embed_tokens.weight"),
        0.0,
        "frozen by `embed_tokens`"
    );
    assert_eq!(
        moved("model.layers.0.mlp.up_proj.weight"),
        0.0,
        "frozen by `layers.0.mlp`"
    );
    for trained in [
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.norm.weight",
        "lm_head.weight",
    ] {
        assert!(moved(trained) > 1e-5, "{trained} did not train");
    }
    let log = std::fs::read_to_string(cfg.output_dir().join("logs.log")).unwrap();
    assert!(
        log.contains("full fine-tuning:") && log.contains("parameters trained"),
        "{log}"
    );
}

#[test]
fn a_stopped_full_fine_tuning_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        ("training.epochs", "2"),
        ("architecture.gradient_checkpointing", "true"),
    ];
    let whole = experiment(dir.path(), "whole", &with(&extra));
    train(&whole, false, None);
    let cut = experiment(dir.path(), "cut", &with(&extra));
    let stopped = train(&cut, false, Some(4));
    assert_eq!(stopped.summary.status.name(), "stopped");
    assert!(cut
        .output_dir()
        .join("checkpoint/model/model.safetensors")
        .is_file());
    let resumed = train(&cut, true, None);
    assert_eq!(resumed.summary.status.name(), "finished");
    let a = read_f32_tensors(&whole.output_dir().join("model/model.safetensors"));
    let b = read_f32_tensors(&cut.output_dir().join("model/model.safetensors"));
    let diff = max_tensors_diff(&a, &b);
    assert!(diff < 1e-6, "resumed weights differ by {diff}");
}

#[test]
fn a_fully_fine_tuned_classifier_keeps_its_head_with_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = experiment(
        dir.path(),
        "full-classifier",
        &with(&[
            ("problem_type", "text_causal_classification_modeling"),
            ("training.loss_function", "CrossEntropyLoss"),
            ("dataset.answer_column", "output"),
            ("dataset.num_classes", "100"),
            ("prediction.metric", "Accuracy"),
        ]),
    );
    let ran = train(&cfg, false, None);
    assert_eq!(ran.summary.status.name(), "finished");
    let model = cfg.output_dir().join("model");
    assert!(model.join("classification_head.safetensors").is_file());
    let head = ferrotune_train::head::Head::load(&model).unwrap();
    assert_eq!(head.mapping.outputs, 100);
}

#[test]
fn quantized_or_16_bit_full_fine_tuning_is_refused_before_a_folder_exists() {
    let dir = tempfile::tempdir().unwrap();
    for (dtype, expected) in [
        ("int4", "cannot be fine-tuned in full"),
        ("bfloat16", "trains f32 weights"),
    ] {
        let cfg = experiment(
            dir.path(),
            "refused",
            &with(&[("architecture.backbone_dtype", dtype)]),
        );
        let e = ferrotune_train::run::preflight(&cfg, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{dtype}: {e}");
    }
    assert!(!dir.path().join("refused").exists());
}

#[test]
fn a_backbone_that_is_not_pretrained_trains_from_fresh_weights_of_its_shapes() {
    // `architecture.pretrained: false` (H2O LLM Studio's): the folder's shapes, tokenizer and config, fresh values.
    // Frozen layers keep the fresh values, so the saved model shows what the run started from.
    let dir = tempfile::tempdir().unwrap();
    let cfg = experiment(
        dir.path(),
        "scratch",
        &with(&[
            ("architecture.pretrained", "false"),
            ("training.freeze_layers", "[embed_tokens, layers.0]"),
        ]),
    );
    let ran = train(&cfg, false, None);
    assert_trained(&ran, "training from scratch");
    let log = ran.logs().join("\n");
    assert!(
        log.contains("`architecture.pretrained: false`: fresh weights of"),
        "{log}"
    );
    let stored = read_f32_tensors(&model_fixture("llama3_rope").join("model.safetensors"));
    let saved = read_f32_tensors(&cfg.output_dir().join("model/model.safetensors"));
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        saved.keys().collect::<Vec<_>>()
    );
    let embed = &saved["model.embed_tokens.weight"];
    assert_ne!(
        embed, &stored["model.embed_tokens.weight"],
        "not the stored weights"
    );
    // transformers' init: normal(0, initializer_range) for weights, ones for RMSNorm.
    let std = (embed.iter().map(|v| v * v).sum::<f32>() / embed.len() as f32).sqrt();
    let range = ferrotune_model::weights::RandomInit::for_folder(&model_fixture("llama3_rope"), 0)
        .std as f32;
    assert!(
        (std / range - 1.0).abs() < 0.05,
        "std {std} vs initializer_range {range}"
    );
    assert!(saved["model.layers.0.input_layernorm.weight"]
        .iter()
        .all(|&v| v == 1.0));
    // The same seed draws the same weights.
    let dir2 = tempfile::tempdir().unwrap();
    let cfg2 = experiment(
        dir2.path(),
        "scratch",
        &with(&[
            ("architecture.pretrained", "false"),
            ("training.freeze_layers", "[embed_tokens, layers.0]"),
        ]),
    );
    train(&cfg2, false, None);
    let again = read_f32_tensors(&cfg2.output_dir().join("model/model.safetensors"));
    assert_eq!(max_tensors_diff(&saved, &again), 0.0);
}
