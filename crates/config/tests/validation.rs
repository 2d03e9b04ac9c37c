//! Pure validation: every rule, error or warning, all reported at once.

use ferrotune_config::{
    min_max_length, validate, BackboneDtype, Experiment, Metric, Report, ValidationStrategy, Value,
    MIN_CONTENT_TOKENS,
};

use crate::valid;

fn report(change: impl FnOnce(&mut Experiment)) -> Report {
    let mut cfg = valid();
    change(&mut cfg);
    validate(&cfg)
}

fn only_error(r: &Report, key: &str) -> String {
    assert_eq!(r.errors.len(), 1, "{r:#?}");
    assert_eq!(r.errors[0].key, key, "{r:#?}");
    r.errors[0].to_string()
}

fn only_warning(r: &Report, key: &str) -> String {
    assert!(r.errors.is_empty(), "{r:#?}");
    assert_eq!(r.warnings.len(), 1, "{r:#?}");
    assert_eq!(r.warnings[0].key, key, "{r:#?}");
    r.warnings[0].to_string()
}

#[test]
fn defaults_with_training_data_are_clean() {
    assert_eq!(validate(&valid()), Report::default());
}

#[test]
fn out_of_range_values_are_errors() {
    let e = only_error(
        &report(|c| c.dataset.validation_size = 1.0),
        "dataset.validation_size",
    );
    assert_eq!(e, "`dataset.validation_size` must be in (0, 1), found `1`");
    only_error(
        &report(|c| c.dataset.data_sample = 0.0),
        "dataset.data_sample",
    );
    only_error(
        &report(|c| c.training.learning_rate = 0.0),
        "training.learning_rate",
    );
    let e = only_error(
        &report(|c| c.training.batch_size = 0),
        "training.batch_size",
    );
    assert_eq!(e, "`training.batch_size` must be >= 1, found `0`");
    let e = only_error(
        &report(|c| c.training.weight_decay = f64::NAN),
        "training.weight_decay",
    );
    assert!(e.contains("finite"), "{e}");
    only_error(&report(|c| c.prediction.top_p = 0.0), "prediction.top_p");
}

#[test]
fn grid_values_are_range_checked_too() {
    let r = report(|c| {
        c.grid_search = true;
        c.set(
            "training.lora_dropout",
            &serde_yaml_ng::from_str("[0.1, 1.5]").unwrap(),
        )
        .unwrap();
    });
    assert!(only_error(&r, "training.lora_dropout").contains("found `1.5`"));
}

#[test]
fn quantized_backbone_without_lora_is_an_error() {
    for dtype in [BackboneDtype::Int8, BackboneDtype::Int4] {
        let e = only_error(
            &report(|c| {
                c.architecture.backbone_dtype = dtype;
                c.training.lora = false;
            }),
            "architecture.backbone_dtype",
        );
        assert!(
            e.contains("needs LoRA") && e.contains("training.lora: true"),
            "{e}"
        );
        assert!(report(|c| c.architecture.backbone_dtype = dtype).is_ok());
    }
}

#[test]
fn temperature_without_sampling_is_a_warning() {
    let w = only_warning(
        &report(|c| c.prediction.temperature = 0.7),
        "prediction.temperature",
    );
    assert!(
        w.contains("has no effect unless `prediction.do_sample` is `true`"),
        "{w}"
    );
    let r = report(|c| {
        c.prediction.temperature = 0.7;
        c.prediction.do_sample = true;
    });
    assert_eq!(r, Report::default());
}

#[test]
fn sampling_at_temperature_zero_is_a_warning() {
    only_warning(
        &report(|c| c.prediction.do_sample = true),
        "prediction.temperature",
    );
}

#[test]
fn any_setting_without_effect_is_a_warning() {
    let w = only_warning(
        &report(|c| {
            c.training.lora = false;
            c.training.lora_r = 16;
        }),
        "training.lora_r",
    );
    assert!(w.contains("unless `training.lora` is `true`"), "{w}");
    only_warning(
        &report(|c| c.dataset.validation_dataframe = "v.csv".into()),
        "dataset.validation_dataframe",
    );
    assert!(
        report(|c| c.training.lora = false).warnings.is_empty(),
        "defaults of inactive settings are quiet"
    );
}

#[test]
fn beams_with_sampling_is_an_error() {
    let e = only_error(
        &report(|c| {
            c.prediction.num_beams = 4;
            c.prediction.do_sample = true;
            c.prediction.temperature = 0.7;
        }),
        "prediction.num_beams",
    );
    assert!(e.contains("num_beams: 1"), "{e}");
    assert!(report(|c| c.prediction.num_beams = 4).is_ok());
}

#[test]
fn max_length_too_short_for_the_markers_is_a_warning() {
    let cfg = valid();
    // <|system|>, <|prompt|>, <|answer|>: 30 bytes, 3 EOS tokens, then room for content.
    assert_eq!(min_max_length(&cfg), 30 + 3 + MIN_CONTENT_TOKENS);
    let w = only_warning(
        &report(|c| c.tokenizer.max_length = 40),
        "tokenizer.max_length",
    );
    assert!(w.contains("raise it to at least 65"), "{w}");
    assert!(
        report(|c| c.tokenizer.max_length = 65).is_ok()
            && report(|c| c.tokenizer.max_length = 65).warnings.is_empty()
    );
    let mut no_system = valid();
    no_system.dataset.system_column = "None".into();
    assert_eq!(min_max_length(&no_system), 20 + 2 + MIN_CONTENT_TOKENS);
    let mut chat = valid();
    chat.dataset.use_chat_template = true;
    assert_eq!(min_max_length(&chat), 2 * MIN_CONTENT_TOKENS);
}

#[test]
fn the_gpt_metric_needs_a_judge_model_and_an_http_endpoint() {
    assert!(validate(&{
        let mut c = valid();
        c.prediction.metric = Metric::Gpt;
        c
    })
    .errors
    .is_empty());
    let e = only_error(
        &report(|c| {
            c.prediction.metric = Metric::Gpt;
            c.prediction.metric_gpt_model = " ".into();
        }),
        "prediction.metric_gpt_model",
    );
    assert!(e.contains("is empty"), "{e}");
    let e = only_error(
        &report(|c| {
            c.prediction.metric = Metric::Gpt;
            c.prediction.metric_gpt_api_base = "localhost:8000".into();
        }),
        "prediction.metric_gpt_api_base",
    );
    assert!(e.contains("not an http(s) address"), "{e}");
}

#[test]
fn custom_validation_needs_a_file() {
    let e = only_error(
        &report(|c| c.dataset.validation_strategy = ValidationStrategy::Custom),
        "dataset.validation_dataframe",
    );
    assert!(e.contains("`custom`"), "{e}");
}

#[test]
fn training_data_is_required() {
    assert!(
        only_error(&validate(&Experiment::default()), "dataset.train_dataframe")
            .contains("is empty")
    );
}

#[test]
fn grid_lists_need_grid_mode() {
    let mut cfg = valid();
    cfg.set(
        "training.lora_r",
        &serde_yaml_ng::from_str("[4, 8]").unwrap(),
    )
    .unwrap();
    let e = only_error(&validate(&cfg), "training.lora_r");
    assert!(e.contains("`grid_search` is off"), "{e}");
    cfg.grid_search = true;
    assert_eq!(validate(&cfg), Report::default());
    let w = only_warning(&report(|c| c.grid_search = true), "grid_search");
    assert!(w.contains("no setting lists several values"), "{w}");
}

#[test]
fn misc_rules() {
    only_error(
        &report(|c| c.environment.device = "gpu0".into()),
        "environment.device",
    );
    assert!(report(|c| c.environment.device = "cuda:1".into()).is_ok());
    only_error(
        &report(|c| c.experiment_name = "a/b".into()),
        "experiment_name",
    );
    only_error(
        &report(|c| {
            c.prediction.min_length_inference = 10;
            c.prediction.max_length_inference = 5;
        }),
        "prediction.min_length_inference",
    );
    only_warning(
        &report(|c| c.training.warmup_epochs = 2.0),
        "training.warmup_epochs",
    );
    only_error(
        &report(|c| c.dataset.prompt_column.clear()),
        "dataset.prompt_column",
    );
}

#[test]
fn everything_is_reported_at_once() {
    let mut cfg = Experiment::default();
    cfg.prediction.metric = Metric::Gpt;
    cfg.prediction.metric_gpt_model.clear();
    cfg.training.lora = false;
    cfg.architecture.backbone_dtype = BackboneDtype::Int4;
    cfg.dataset.validation_size = 2.0;
    cfg.prediction.temperature = 1.0;
    cfg.tokenizer.max_length = 16;
    let r = validate(&cfg);
    let errors: Vec<&str> = r.errors.iter().map(|i| i.key.as_str()).collect();
    let warnings: Vec<&str> = r.warnings.iter().map(|i| i.key.as_str()).collect();
    for key in [
        "dataset.validation_size",
        "dataset.train_dataframe",
        "architecture.backbone_dtype",
        "prediction.metric_gpt_model",
    ] {
        assert!(errors.contains(&key), "{key} missing from {errors:?}");
    }
    assert_eq!(warnings, ["prediction.temperature", "tokenizer.max_length"]);
    assert_eq!(cfg.get("prediction.temperature"), Some(Value::from(1.0)));
}

#[test]
fn mlflow_needs_an_http_tracking_server_and_an_experiment_name() {
    use ferrotune_config::Logger;
    // The test process may have MLFLOW_TRACKING_URI set: a file path is checked the same way.
    let e = only_error(
        &report(|c| {
            c.logging.logger = Logger::MLflow;
            c.logging.mlflow_tracking_uri = "./mlruns".into();
        }),
        "logging.mlflow_tracking_uri",
    );
    assert!(e.contains("is `./mlruns`, not an http(s) address"), "{e}");
    assert!(e.contains("mlflow server --backend-store-uri"), "{e}");
    let e = only_error(
        &report(|c| {
            c.logging.logger = Logger::MLflow;
            c.logging.mlflow_tracking_uri = "http://127.0.0.1:5000/".into();
            c.logging.mlflow_experiment_name = " ".into();
        }),
        "logging.mlflow_experiment_name",
    );
    assert!(e.contains("is empty"), "{e}");
    let mut cfg = valid();
    cfg.logging.mlflow_tracking_uri = " https://mlflow.internal:443/ ".into();
    assert_eq!(
        cfg.logging.mlflow_uri().as_deref(),
        Some("https://mlflow.internal:443")
    );
    if std::env::var_os(ferrotune_config::MLFLOW_TRACKING_URI_ENV).is_none() {
        let e = only_error(
            &report(|c| c.logging.logger = Logger::MLflow),
            "logging.mlflow_tracking_uri",
        );
        assert!(e.contains("`MLFLOW_TRACKING_URI` is not set"), "{e}");
    }
}

#[test]
fn a_backbone_that_is_not_pretrained_needs_full_fine_tuning() {
    let e = only_error(
        &report(|c| c.architecture.pretrained = false),
        "architecture.pretrained",
    );
    assert!(e.contains("`training.lora: false`"), "{e}");
    assert!(validate(&{
        let mut c = valid();
        c.architecture.pretrained = false;
        c.training.lora = false;
        c
    })
    .errors
    .is_empty());
}
