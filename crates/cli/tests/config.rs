//! End-to-end tests of `ferrotune config init|validate|show` with the real binary. No backbone is loaded.

use std::path::Path;
use std::process::{Command, Output};

use ferrotune_config::Experiment;

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(args)
        .current_dir(dir)
        .env("FERROTUNE_HOME", dir.join("home"))
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn assert_success(o: &Output) {
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// A failed run: non-zero exit, the expected text on stderr, no panic.
fn assert_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "should fail: {}", stdout(o));
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A temporary folder with `cfg.yaml` (the defaults) and `train.csv`.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    assert_success(&run(dir.path(), &["config", "init", "--out", "cfg.yaml"]));
    std::fs::write(dir.path().join("train.csv"), "instruction,input,output\n").unwrap();
    dir
}

#[test]
fn init_writes_the_commented_defaults() {
    let dir = setup();
    let text = std::fs::read_to_string(dir.path().join("cfg.yaml")).unwrap();
    assert!(text.contains("# Peak learning rate"), "{text}");
    assert_eq!(
        Experiment::load(&dir.path().join("cfg.yaml")).unwrap(),
        Experiment::default()
    );

    let o = run(dir.path(), &["config", "init"]);
    assert_success(&o);
    assert_eq!(stdout(&o), text, "stdout and file agree");

    assert_failure(
        &run(dir.path(), &["config", "init", "--out", "cfg.yaml"]),
        "--force",
    );
    assert_success(&run(
        dir.path(),
        &["config", "init", "--out", "cfg.yaml", "--force"],
    ));
}

#[test]
fn validate_reports_errors_and_exits_non_zero() {
    let dir = setup();
    let o = run(
        dir.path(),
        &[
            "config",
            "validate",
            "cfg.yaml",
            "--prediction.metric",
            "GPT",
            "--prediction.metric_gpt_api_base",
            "localhost:8000",
        ],
    );
    assert_failure(&o, "`cfg.yaml` has 2 errors");
    let out = stdout(&o);
    assert!(
        out.contains("error: `dataset.train_dataframe` is empty"),
        "{out}"
    );
    assert!(
        out.contains(
            "error: `prediction.metric_gpt_api_base` is `localhost:8000`, not an http(s) address"
        ),
        "{out}"
    );
    assert!(
        out.contains("  help: e.g. `http://127.0.0.1:10101/v1`"),
        "{out}"
    );
}

#[test]
fn validate_passes_with_overrides_and_shows_warnings() {
    let dir = setup();
    let args = [
        "config",
        "validate",
        "cfg.yaml",
        "--dataset.train_dataframe",
        "train.csv",
        "--output_directory=out/{experiment_name}",
        "--prediction.temperature",
        "0.5",
    ];
    let o = run(dir.path(), &args);
    assert_success(&o);
    let out = stdout(&o);
    assert!(
        out.contains("warning: `prediction.temperature` is `0.5` but has no effect"),
        "{out}"
    );
    assert!(out.contains("`cfg.yaml` is valid (1 warning)"), "{out}");
}

#[test]
fn validate_checks_the_files_unless_settings_only() {
    let dir = setup();
    let args = ["--dataset.train_dataframe", "missing.csv"];
    let o = run(
        dir.path(),
        &[&["config", "validate", "cfg.yaml"][..], &args].concat(),
    );
    assert_failure(&o, "1 error");
    assert!(
        stdout(&o).contains("`missing.csv`, which does not exist"),
        "{}",
        stdout(&o)
    );
    let o = run(
        dir.path(),
        &[
            &["config", "validate", "--settings-only", "cfg.yaml"][..],
            &args,
        ]
        .concat(),
    );
    assert_success(&o);
}

#[test]
fn unknown_keys_suggest_the_closest_on_the_command_line_and_in_the_file() {
    let dir = setup();
    let o = run(
        dir.path(),
        &[
            "config",
            "show",
            "cfg.yaml",
            "--training.lerning_rate",
            "1e-5",
        ],
    );
    assert_failure(&o, "`training.lerning_rate` is not a setting");
    assert!(
        stderr(&o).contains("did you mean `training.learning_rate`?"),
        "{}",
        stderr(&o)
    );

    std::fs::write(dir.path().join("bad.yaml"), "training:\n  lora_rr: 8\n").unwrap();
    let o = run(dir.path(), &["config", "validate", "bad.yaml"]);
    assert_failure(&o, "error: `bad.yaml`: `training.lora_rr` is not a setting\nhelp: did you mean `training.lora_r`?");
}

#[test]
fn type_errors_name_the_key_and_the_type() {
    let dir = setup();
    let o = run(
        dir.path(),
        &["config", "show", "cfg.yaml", "--training.epochs", "two"],
    );
    assert_failure(&o, "`training.epochs` expects an integer, found `two`");
    let o = run(
        dir.path(),
        &["config", "show", "cfg.yaml", "--training.optimizer=adam_w"],
    );
    assert_failure(&o, "did you mean `AdamW`?");
}

#[test]
fn show_prints_the_merged_settings() {
    let dir = setup();
    std::fs::write(
        dir.path().join("small.yaml"),
        "training:\n  epochs: 3\n  batch_size: 8\n",
    )
    .unwrap();
    let args = [
        "config",
        "show",
        "small.yaml",
        "--training.epochs",
        "5",
        "--training.lora_target_modules",
        "q_proj,v_proj",
        "--environment.seed",
        "-1",
        "--training.lora",
    ];
    let o = run(dir.path(), &args);
    assert_success(&o);
    let shown = Experiment::from_yaml_str(&stdout(&o), "stdout").unwrap();
    assert_eq!((shown.training.epochs, shown.training.batch_size), (5, 8));
    assert_eq!(shown.training.lora_target_modules.len(), 2);
    assert!(!stdout(&o).contains('#'), "no comments by default");

    let o = run(dir.path(), &["config", "show", "--comments", "small.yaml"]);
    assert_success(&o);
    assert!(
        stdout(&o).contains("# Rank of the LoRA matrices."),
        "{}",
        stdout(&o)
    );
}

#[test]
fn stray_arguments_after_the_file_are_explained() {
    let dir = setup();
    let o = run(dir.path(), &["config", "show", "cfg.yaml", "other.yaml"]);
    assert_failure(
        &o,
        "command-line argument `other.yaml` is not a `--section.field` setting",
    );
    assert!(stderr(&o).contains("help: write overrides as `--section.field value`"));
}

#[test]
fn an_h2o_file_validates_as_it_is_and_import_h2o_writes_the_ferrotune_file() {
    let dir = tempfile::tempdir().unwrap();
    let h2o = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tests/fixtures/h2o/regression.yaml"),
    )
    .unwrap()
    .replace("LLM_BACKBONE", "/models/backbone")
    .replace("TRAIN_DATAFRAME", "/data/train.csv");
    std::fs::write(dir.path().join("cfg.yaml"), &h2o).unwrap();
    let o = run(
        dir.path(),
        &["config", "validate", "--settings-only", "cfg.yaml"],
    );
    assert_success(&o);
    let out = stdout(&o);
    assert!(
        out.contains("warning: `environment.use_deepspeed` is an H2O LLM Studio setting and is ignored: DeepSpeed"),
        "{out}"
    );
    let o = run(
        dir.path(),
        &["config", "import-h2o", "cfg.yaml", "--out", "ours.yaml"],
    );
    assert_success(&o);
    let ours = std::fs::read_to_string(dir.path().join("ours.yaml")).unwrap();
    assert!(
        ours.starts_with("# Imported from the H2O LLM Studio experiment `cfg.yaml`."),
        "{ours}"
    );
    assert!(
        ours.contains("#   environment.huggingface_branch: backbones are local folders"),
        "{ours}"
    );
    let a = Experiment::from_yaml_str(&h2o, "h2o").unwrap();
    let b = Experiment::from_yaml_str(&ours, "ours").unwrap();
    assert!(b.ignored.is_empty(), "the written file is Ferrotune's own");
    assert_eq!(a.to_yaml(), b.to_yaml());
    let o = run(
        dir.path(),
        &["config", "import-h2o", "cfg.yaml", "--out", "ours.yaml"],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
}
