//! The world stage: files, backbone, output folder.

use std::path::Path;

use ferrotune_config::{check_environment, Experiment, Report, ValidationStrategy};

/// A config whose files all exist inside `dir`.
fn in_dir(dir: &Path) -> Experiment {
    std::fs::write(dir.join("train.csv"), "instruction,input,output\n").unwrap();
    let mut cfg = Experiment::default();
    cfg.dataset.train_dataframe = dir.join("train.csv").display().to_string();
    cfg.output_directory = dir.join("out/{experiment_name}").display().to_string();
    cfg.experiment_name = "run".into();
    cfg
}

fn errors(r: &Report, key: &str) -> Vec<String> {
    r.errors_for(key).map(ToString::to_string).collect()
}

#[test]
fn a_good_setup_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let r = check_environment(&in_dir(dir.path()));
    assert!(r.errors.is_empty(), "{r:#?}");
    assert!(
        !dir.path().join("out").exists(),
        "the check creates no folders"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "the probe file is removed"
    );
}

#[test]
fn data_files_must_exist_with_a_supported_extension() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = in_dir(dir.path());
    cfg.dataset.train_dataframe = dir.path().join("missing.jsonl").display().to_string();
    let e = errors(&check_environment(&cfg), "dataset.train_dataframe");
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("does not exist"), "{e:?}");

    std::fs::write(dir.path().join("train.txt"), "x").unwrap();
    cfg.dataset.train_dataframe = dir.path().join("train.txt").display().to_string();
    let e = errors(&check_environment(&cfg), "dataset.train_dataframe");
    assert!(
        e[0].contains("not supported") && e[0].contains(".jsonl"),
        "{e:?}"
    );

    std::fs::create_dir(dir.path().join("folder.json")).unwrap();
    cfg.dataset.train_dataframe = dir.path().join("folder.json").display().to_string();
    assert!(errors(&check_environment(&cfg), "dataset.train_dataframe")[0].contains("not a file"));

    for ext in ["csv", "parquet", "json", "JSONL"] {
        let file = dir.path().join(format!("data.{ext}"));
        std::fs::write(&file, "").unwrap();
        cfg.dataset.train_dataframe = file.display().to_string();
        assert!(
            errors(&check_environment(&cfg), "dataset.train_dataframe").is_empty(),
            "{ext}"
        );
    }
}

#[test]
fn validation_file_is_checked_only_when_custom() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = in_dir(dir.path());
    cfg.dataset.validation_dataframe = "missing.csv".into();
    assert!(check_environment(&cfg).is_ok());
    cfg.dataset.validation_strategy = ValidationStrategy::Custom;
    assert_eq!(
        errors(&check_environment(&cfg), "dataset.validation_dataframe").len(),
        1
    );
}

#[test]
fn backbone_must_be_a_folder_or_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = in_dir(dir.path());
    cfg.llm_backbone = dir.path().join("nope").display().to_string();
    assert!(errors(&check_environment(&cfg), "llm_backbone")[0].contains("does not exist"));

    std::fs::write(dir.path().join("model.bin"), "").unwrap();
    cfg.llm_backbone = dir.path().join("model.bin").display().to_string();
    assert!(errors(&check_environment(&cfg), "llm_backbone")[0].contains(".gguf"));

    std::fs::write(dir.path().join("model.gguf"), "").unwrap();
    cfg.llm_backbone = dir.path().join("model.gguf").display().to_string();
    assert!(check_environment(&cfg).is_ok());

    std::fs::create_dir(dir.path().join("hf")).unwrap();
    cfg.llm_backbone = dir.path().join("hf").display().to_string();
    let r = check_environment(&cfg);
    assert!(
        r.is_ok() && r.warnings_for("llm_backbone").count() == 1,
        "{r:#?}"
    );
    std::fs::write(dir.path().join("hf/config.json"), "{}").unwrap();
    assert_eq!(
        check_environment(&cfg).warnings_for("llm_backbone").count(),
        0
    );
}

#[test]
fn output_folder_must_be_writable_and_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = in_dir(dir.path());
    std::fs::write(dir.path().join("taken"), "").unwrap();
    cfg.output_directory = dir.path().join("taken").display().to_string();
    assert!(errors(&check_environment(&cfg), "output_directory")[0].contains("is a file"));

    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    set_mode(&locked, 0o555);
    cfg.output_directory = locked.join("a/b").display().to_string();
    let writable_anyway = std::fs::write(locked.join("x"), "").is_ok(); // root ignores permissions
    let e = errors(&check_environment(&cfg), "output_directory");
    set_mode(&locked, 0o755);
    if !writable_anyway {
        assert!(e.len() == 1 && e[0].contains("not writable"), "{e:?}");
    }
}

#[test]
fn a_non_empty_output_folder_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = in_dir(dir.path());
    std::fs::create_dir_all(dir.path().join("out/run")).unwrap();
    std::fs::write(dir.path().join("out/run/old.log"), "").unwrap();
    let r = check_environment(&cfg);
    assert!(
        r.is_ok() && r.warnings_for("output_directory").count() == 1,
        "{r:#?}"
    );
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}
