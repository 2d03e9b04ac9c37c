//! Command-line overrides: every type, errors naming the key and type, layering.

use ferrotune_config::{
    apply_overrides, load_with_overrides, split_override_args, DataSampleChoice, Experiment,
    LoraModule, Optimizer, Value,
};

use crate::issues;

fn apply(cfg: &mut Experiment, args: &[&str]) -> ferrotune_config::Result<()> {
    apply_overrides(cfg, &split_override_args(args)?)
}

fn applied(args: &[&str]) -> Experiment {
    let mut cfg = Experiment::default();
    apply(&mut cfg, args).unwrap_or_else(|e| panic!("{e}"));
    cfg
}

#[test]
fn floats() {
    let cfg = applied(&[
        "--training.learning_rate",
        "1e-5",
        "--dataset.validation_size=0.2",
    ]);
    assert_eq!(
        (cfg.training.learning_rate, cfg.dataset.validation_size),
        (1e-5, 0.2)
    );
    assert_eq!(
        applied(&["--training.warmup_epochs", "2"])
            .training
            .warmup_epochs,
        2.0
    );
}

#[test]
fn ints_including_negative() {
    let cfg = applied(&[
        "--training.epochs",
        "3",
        "--environment.seed",
        "-1",
        "--tokenizer.max_length=1024",
    ]);
    assert_eq!(
        (
            cfg.training.epochs,
            cfg.environment.seed,
            cfg.tokenizer.max_length
        ),
        (3, -1, 1024)
    );
}

#[test]
fn bools_with_a_value_or_alone() {
    let cfg = applied(&[
        "--training.lora",
        "false",
        "--prediction.do_sample",
        "--training.use_dora=true",
    ]);
    assert!(!cfg.training.lora && cfg.prediction.do_sample && cfg.training.use_dora);
}

#[test]
fn strings_as_typed() {
    let cfg = applied(&[
        "--llm_backbone",
        "models/x.gguf",
        "--dataset.answer_column",
        "response",
    ]);
    assert_eq!(
        (cfg.llm_backbone.as_str(), cfg.dataset.answer_column.first()),
        ("models/x.gguf", "response")
    );
}

#[test]
fn choices() {
    assert_eq!(
        applied(&["--training.optimizer", "SGD"]).training.optimizer,
        Optimizer::Sgd
    );
    let mut cfg = Experiment::default();
    let found = issues(apply(&mut cfg, &["--training.optimizer", "adamw"]).unwrap_err());
    assert_eq!(found[0].key, "training.optimizer");
    assert_eq!(
        found[0].message,
        "expects one of `Adam`, `AdamW`, `SGD`, `RMSprop`, `Adadelta`, found `adamw`"
    );
    assert_eq!(found[0].help.as_deref(), Some("did you mean `AdamW`?"));
}

#[test]
fn lists_comma_separated_or_flow() {
    let cfg = applied(&[
        "--dataset.prompt_column",
        "question,context",
        "--environment.gpus",
        "0, 1",
    ]);
    assert_eq!(
        cfg.dataset.prompt_column,
        vec!["question".to_string(), "context".to_string()]
    );
    assert_eq!(cfg.environment.gpus, vec![0, 1]);
    let cfg = applied(&[
        "--training.lora_target_modules",
        "[q_proj, v_proj]",
        "--dataset.data_sample_choice=Train",
    ]);
    assert_eq!(
        cfg.training.lora_target_modules,
        vec![LoraModule::QProj, LoraModule::VProj]
    );
    assert_eq!(
        cfg.dataset.data_sample_choice,
        vec![DataSampleChoice::Train]
    );
    assert!(applied(&["--dataset.prompt_column="])
        .dataset
        .prompt_column
        .is_empty());
    let mut cfg = Experiment::default();
    let found = issues(
        apply(
            &mut cfg,
            &["--training.lora_target_modules", "q_proj,qv_proj"],
        )
        .unwrap_err(),
    );
    assert_eq!(found[0].key, "training.lora_target_modules");
    assert!(
        found[0]
            .message
            .starts_with("expects a list whose items are each one of `q_proj`"),
        "{}",
        found[0]
    );
}

#[test]
fn grid_values_as_a_flow_list() {
    let cfg = applied(&["--grid_search", "--training.learning_rate", "[1e-4, 5e-5]"]);
    assert_eq!(
        cfg.grid["training.learning_rate"],
        vec![Value::from(1e-4), Value::from(5e-5)]
    );
    assert_eq!(cfg.training.learning_rate, 1e-4);
}

#[test]
fn type_errors_name_the_key_and_the_type() {
    let mut cfg = Experiment::default();
    let found = issues(
        apply(
            &mut cfg,
            &[
                "--training.epochs",
                "two",
                "--training.lora",
                "maybe",
                "--training.learning_rate",
                "fast",
            ],
        )
        .unwrap_err(),
    );
    let messages: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "`training.epochs` expects an integer, found `two`",
            "`training.lora` expects `true` or `false`, found `maybe`",
            "`training.learning_rate` expects a number, found `fast`",
        ]
    );
    let found = issues(apply(&mut cfg, &["--training.epochs", "-2"]).unwrap_err());
    assert!(
        found[0].help.as_deref().unwrap().contains("from 0 to"),
        "{}",
        found[0]
    );
}

#[test]
fn unknown_override_keys_suggest_the_closest() {
    let mut cfg = Experiment::default();
    let err = apply(
        &mut cfg,
        &["--training.lerning_rate", "1e-5", "--lora_r", "8"],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the command line has 2 invalid settings"),
        "{err}"
    );
    let found = issues(err);
    assert_eq!(
        found[0].help.as_deref(),
        Some("did you mean `training.learning_rate`?")
    );
    assert_eq!(
        found[1].help.as_deref(),
        Some("did you mean `training.lora_r`?")
    );
    let found = issues(apply(&mut cfg, &["--training", "1"]).unwrap_err());
    assert!(found[0].message.contains("group"), "{}", found[0]);
}

#[test]
fn dashes_in_keys_read_as_underscores() {
    assert_eq!(
        applied(&["--training.learning-rate", "0.5"])
            .training
            .learning_rate,
        0.5
    );
}

#[test]
fn later_layers_win_default_then_yaml_then_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cfg.yaml");
    std::fs::write(&path, "training:\n  epochs: 3\n  learning_rate: 0.001\n").unwrap();
    let args = split_override_args(&["--training.epochs", "5", "--training.epochs", "7"]).unwrap();
    let cfg = load_with_overrides(Some(&path), &args).unwrap();
    assert_eq!(
        cfg.training.epochs, 7,
        "command line over YAML, later over earlier"
    );
    assert_eq!(cfg.training.learning_rate, 0.001, "YAML over default");
    assert_eq!(cfg.training.batch_size, 2, "default");
}
