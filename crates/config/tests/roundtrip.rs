//! YAML in and out: exact round trips, unknown keys, wrong types.

use ferrotune_config::{
    BackboneDtype, DataSampleChoice, Error, Experiment, LoraModule, Metric, Optimizer,
    SaveCheckpoint, Value,
};

use crate::issues;

#[test]
fn default_config_round_trips_and_resaves_byte_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cfg.yaml");
    Experiment::default().save(&path).unwrap();
    let first = std::fs::read_to_string(&path).unwrap();
    let loaded = Experiment::load(&path).unwrap();
    assert_eq!(loaded, Experiment::default());
    loaded.save(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
    assert!(
        first
            .lines()
            .filter(|l| l.trim_start().starts_with("# "))
            .count()
            > 70,
        "a comment per key"
    );
}

fn non_default() -> Experiment {
    let mut cfg = Experiment {
        experiment_name: "brave-otter".into(),
        llm_backbone: "~/models/SmolLM2 135M.gguf".into(),
        output_directory: "runs/{experiment_name}/#1".into(),
        ..Experiment::default()
    };
    cfg.dataset.train_dataframe = "data/train: v2.parquet".into();
    cfg.dataset.data_sample = 0.25;
    cfg.dataset.data_sample_choice = vec![DataSampleChoice::Validation];
    cfg.dataset.system_column = "None".into();
    cfg.dataset.prompt_column = vec!["question".into(), "a,b [c]".into(), "true".into()];
    cfg.dataset.prompt_column_separator = "\n---\t\"x\"\\\n".into();
    cfg.dataset.text_prompt_start = "<|user|>\n".into();
    cfg.dataset.text_answer_separator = "'".into();
    cfg.tokenizer.max_length = 2048;
    cfg.architecture.backbone_dtype = BackboneDtype::Int4;
    cfg.training.optimizer = Optimizer::Sgd;
    cfg.training.learning_rate = 3.0e-5;
    cfg.training.weight_decay = 1e-20;
    cfg.training.lora_r = 64;
    cfg.training.lora_target_modules = vec![LoraModule::QProj, LoraModule::DownProj];
    cfg.training.differential_learning_rate_layers = vec!["lm_head".into()];
    cfg.training.save_checkpoint = SaveCheckpoint::EachEvaluationEpoch;
    cfg.prediction.metric = Metric::Bleu;
    cfg.prediction.stop_tokens = "</s>,###".into();
    cfg.environment.seed = 1234;
    cfg.environment.gpus = vec![0, 3];
    cfg.environment.device = "cuda:1".into();
    cfg.grid_search = true;
    cfg.set(
        "training.learning_rate",
        &serde_yaml_ng::from_str("[3.0e-5, 1.0e-4]").unwrap(),
    )
    .unwrap();
    cfg.set(
        "llm_backbone",
        &serde_yaml_ng::from_str("['~/models/a.gguf', 'b, c']").unwrap(),
    )
    .unwrap();
    cfg
}

#[test]
fn non_default_config_round_trips_exactly() {
    let cfg = non_default();
    for text in [cfg.to_yaml(), cfg.to_yaml_compact()] {
        let back =
            Experiment::from_yaml_str(&text, "test").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, cfg, "{text}");
        assert_eq!(back.to_yaml(), cfg.to_yaml());
    }
    assert_eq!(cfg.grid.len(), 2);
}

#[test]
fn serde_round_trips_through_json_too() {
    let cfg = non_default();
    let json = serde_json::to_string(&cfg).unwrap();
    let back: Experiment = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cfg);
    let err = serde_json::from_str::<Experiment>(r#"{"training": {"lora_rr": 8}}"#).unwrap_err();
    assert!(
        err.to_string().contains("did you mean `training.lora_r`?"),
        "{err}"
    );
}

#[test]
fn keys_left_out_keep_their_defaults() {
    let cfg = Experiment::from_yaml_str("training:\n  epochs: 3\n", "test").unwrap();
    assert_eq!(cfg.training.epochs, 3);
    assert_eq!(cfg.training.learning_rate, 1e-4);
    assert_eq!(
        Experiment::from_yaml_str("", "test").unwrap(),
        Experiment::default()
    );
    assert_eq!(
        Experiment::from_yaml_str("training:\n", "test").unwrap(),
        Experiment::default()
    );
}

#[test]
fn h2o_style_single_string_for_a_list_is_a_one_item_list() {
    let cfg =
        Experiment::from_yaml_str("dataset:\n  prompt_column: instruction\n", "test").unwrap();
    assert_eq!(cfg.dataset.prompt_column, vec!["instruction".to_string()]);
}

#[test]
fn unknown_keys_are_errors_with_the_closest_key() {
    let cases = [
        (
            "training:\n  lerning_rate: 0.1\n",
            "training.lerning_rate",
            "training.learning_rate",
        ),
        (
            "learning_rate: 0.1\n",
            "learning_rate",
            "training.learning_rate",
        ),
        ("trainig:\n  epochs: 2\n", "trainig", "training"),
        (
            "training:\n  max_length: 128\n",
            "training.max_length",
            "tokenizer.max_length",
        ),
        ("experiment_nam: x\n", "experiment_nam", "experiment_name"),
    ];
    for (yaml, key, suggestion) in cases {
        let found = issues(Experiment::from_yaml_str(yaml, "`cfg.yaml`").unwrap_err());
        assert_eq!(found.len(), 1, "{yaml}");
        assert_eq!(found[0].key, key);
        assert_eq!(found[0].message, "is not a setting");
        assert_eq!(
            found[0].help.as_deref(),
            Some(format!("did you mean `{suggestion}`?").as_str())
        );
    }
    let err =
        Experiment::from_yaml_str("training:\n  lerning_rate: 0.1\n", "`cfg.yaml`").unwrap_err();
    assert_eq!(
        err.to_string(),
        "`cfg.yaml`: `training.lerning_rate` is not a setting\nhelp: did you mean `training.learning_rate`?"
    );
}

#[test]
fn every_problem_in_a_file_is_reported_at_once() {
    let yaml = "bogus: 1\ntraining:\n  epochs: many\n  optimizer: adamw\n  lora: [true, false]\ntokenizer: 5\n";
    let found = issues(Experiment::from_yaml_str(yaml, "test").unwrap_err());
    let keys: Vec<&str> = found.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "bogus",
            "training.epochs",
            "training.optimizer",
            "training.lora",
            "tokenizer"
        ]
    );
    assert_eq!(found[1].message, "expects an integer, found `many`");
    assert!(
        found[2]
            .message
            .starts_with("expects one of `Adam`, `AdamW`"),
        "{}",
        found[2].message
    );
    assert_eq!(found[2].help.as_deref(), Some("did you mean `AdamW`?"));
    assert!(
        found[3].help.as_deref().unwrap().contains("grid-enabled"),
        "{:?}",
        found[3]
    );
    assert!(
        found[4].message.contains("group of settings"),
        "{}",
        found[4].message
    );
}

#[test]
fn yaml_syntax_errors_name_the_file() {
    let err = Experiment::from_yaml_str("training: [\n", "`cfg.yaml`").unwrap_err();
    assert!(matches!(err, Error::Yaml { .. }), "{err}");
    assert!(
        err.to_string().starts_with("`cfg.yaml` is not valid YAML"),
        "{err}"
    );
    let err = Experiment::from_yaml_str("- a\n- b\n", "`cfg.yaml`").unwrap_err();
    assert!(
        err.to_string().contains("must be a mapping of settings"),
        "{err}"
    );
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let err = Experiment::load(std::path::Path::new("/no/such/cfg.yaml")).unwrap_err();
    assert!(matches!(err, Error::Read { .. }));
    assert!(err.to_string().contains("`/no/such/cfg.yaml`"), "{err}");
}

#[test]
fn get_returns_yaml_values_by_key() {
    let cfg = Experiment::default();
    assert_eq!(
        cfg.get("dataset.prompt_column_separator"),
        Some(Value::from("\n\n"))
    );
    assert_eq!(cfg.get("training.lora_r"), Some(Value::from(4u32)));
}
