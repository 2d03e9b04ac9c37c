//! The metadata table: dependencies, grid flags, what the GUI reads.

use ferrotune_config::{groups, setting, settings, Condition, Experiment, Kind, Literal, Test};

fn is_true(key: &'static str) -> Condition {
    Condition {
        key,
        test: Test::Is(Literal::Bool(true)),
    }
}

#[test]
fn lora_settings_apply_only_with_lora() {
    for key in [
        "training.use_dora",
        "training.lora_r",
        "training.lora_alpha",
        "training.lora_dropout",
        "training.use_rslora",
        "training.lora_target_modules",
    ] {
        assert_eq!(
            setting(key).unwrap().applies_when,
            vec![is_true("training.lora")],
            "{key}"
        );
    }
    let mut cfg = Experiment::default();
    assert!(cfg.applies("training.lora_r"));
    cfg.training.lora = false;
    assert!(!cfg.applies("training.lora_r"));
    assert!(cfg.applies("training.learning_rate"));
}

#[test]
fn other_documented_dependencies() {
    let custom = Condition {
        key: "dataset.validation_strategy",
        test: Test::Is(Literal::Text("custom")),
    };
    assert_eq!(
        setting("dataset.validation_dataframe")
            .unwrap()
            .applies_when,
        vec![custom]
    );
    assert_eq!(
        setting("environment.mixed_precision_dtype")
            .unwrap()
            .applies_when,
        vec![is_true("environment.mixed_precision")]
    );
    for key in [
        "prediction.top_k",
        "prediction.top_p",
        "prediction.temperature",
    ] {
        assert_eq!(
            setting(key).unwrap().applies_when,
            vec![is_true("prediction.do_sample")],
            "{key}"
        );
    }
    assert_eq!(
        setting("dataset.validation_dataframe")
            .unwrap()
            .applies_when[0]
            .to_string(),
        "`dataset.validation_strategy` is `custom`"
    );
}

#[test]
fn grid_flags_are_on_the_chosen_settings() {
    let mut grid: Vec<&str> = settings()
        .iter()
        .filter(|s| s.grid)
        .map(|s| s.key)
        .collect();
    grid.sort();
    assert_eq!(
        grid,
        [
            "architecture.intermediate_dropout",
            "augmentation.neftune_noise_alpha",
            "augmentation.token_mask_probability",
            "llm_backbone",
            "tokenizer.max_length",
            "training.batch_size",
            "training.beta",
            "training.differential_learning_rate",
            "training.epochs",
            "training.grad_accumulation",
            "training.gradient_clip",
            "training.learning_rate",
            "training.lora_alpha",
            "training.lora_dropout",
            "training.lora_r",
            "training.min_learning_rate_ratio",
            "training.optimizer",
            "training.schedule",
            "training.simpo_gamma",
            "training.warmup_epochs",
            "training.weight_decay",
        ]
    );
    assert!(
        settings()
            .iter()
            .filter(|s| s.grid)
            .all(|s| !s.kind.is_list()),
        "grid settings are scalars"
    );
}

#[test]
fn every_group_and_setting_is_described() {
    let keys: Vec<&str> = groups().iter().map(|g| g.key).collect();
    assert_eq!(
        keys,
        [
            "dataset",
            "tokenizer",
            "architecture",
            "training",
            "augmentation",
            "prediction",
            "environment",
            "logging"
        ]
    );
    for g in groups() {
        assert!(settings().iter().any(|s| s.group == g.key), "{}", g.key);
    }
    for s in settings() {
        assert!(!s.help.is_empty() && !s.help.contains('\n'), "{}", s.key);
        assert!(
            s.help.ends_with('.') || s.help.ends_with(')'),
            "{}: {}",
            s.key,
            s.help
        );
        assert_eq!(
            Experiment::default().get(s.key).as_ref(),
            Some(&s.default),
            "{}",
            s.key
        );
    }
    assert_eq!(settings().len(), 104);
}

#[test]
fn kinds_and_choices_come_from_the_types() {
    let optimizer = setting("training.optimizer").unwrap();
    assert_eq!(
        optimizer.choices(),
        Some(&["Adam", "AdamW", "SGD", "RMSprop", "Adadelta"][..])
    );
    assert_eq!(setting("llm_backbone").unwrap().kind, Kind::Path);
    assert_eq!(
        setting("dataset.prompt_column").unwrap().kind.name(),
        "list of string"
    );
    assert_eq!(
        setting("training.lora_target_modules")
            .unwrap()
            .choices()
            .map(<[_]>::len),
        Some(7)
    );
    let range = setting("dataset.data_sample").unwrap().range.unwrap();
    assert_eq!(range.to_string(), "(0, 1]");
}

#[test]
fn the_table_serializes_to_json_for_the_gui() {
    let json = serde_json::to_value(settings()).unwrap();
    let lr = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "training.learning_rate")
        .unwrap();
    assert_eq!(lr["kind"]["type"], "float");
    assert_eq!(lr["default"], 0.0001);
    assert_eq!(lr["grid"], true);
    assert_eq!(lr["range"]["min"]["value"], 0.0);
    let r = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "training.lora_r")
        .unwrap();
    assert_eq!(
        r["applies_when"][0],
        serde_json::json!({"key": "training.lora", "test": {"test": "is", "value": true}})
    );
}

#[test]
fn labels_read_as_words_and_the_schema_names_the_awkward_ones() {
    let label = |key: &str| setting(key).unwrap().label.clone();
    assert_eq!(label("training.batch_size"), "Batch size");
    assert_eq!(label("training.learning_rate"), "Learning rate");
    assert_eq!(label("training.lora_r"), "LoRA r");
    assert_eq!(label("training.lora_alpha"), "LoRA alpha");
    assert_eq!(label("llm_backbone"), "Backbone");
    for s in settings() {
        assert!(
            !s.label.is_empty() && !s.label.contains('_'),
            "{}: label {:?} reads as a key",
            s.key,
            s.label
        );
        assert!(
            s.label.starts_with(|c: char| !c.is_lowercase()) || s.label.starts_with("rs"),
            "{}: label {:?} starts in lower case",
            s.key,
            s.label
        );
    }
}

#[test]
fn the_basic_settings_are_the_dozen_people_change_first() {
    let basic: Vec<&str> = settings()
        .iter()
        .filter(|s| s.basic)
        .map(|s| s.key)
        .collect();
    assert_eq!(
        basic,
        [
            "problem_type",
            "experiment_name",
            "llm_backbone",
            "dataset.train_dataframe",
            "tokenizer.max_length",
            "architecture.backbone_dtype",
            "training.learning_rate",
            "training.batch_size",
            "training.epochs",
            "training.lora",
            "training.lora_r",
            "training.lora_alpha",
            "prediction.metric",
        ]
    );
}
