//! H2O LLM Studio 1.14's own experiment files (`fixtures/h2o/`, written from H2O's config classes as it saves
//! them; see their SOURCE.md) read unchanged: every key accepted, the ones without a meaning here reported once
//! as warnings that say why, H2O's value conventions read, and what Ferrotune cannot do refused by name.

use std::path::Path;

use ferrotune_config::h2o::{H2O_DEFAULT_ONLY, H2O_IGNORED};
use ferrotune_config::{validate, Experiment, LoraModule};

pub fn h2o_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/h2o")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap()
        .replace("LLM_BACKBONE", "/models/backbone")
        .replace("TRAIN_DATAFRAME", "/data/train.csv")
}

#[test]
fn h2o_files_of_every_problem_type_load_with_warnings_for_what_is_ignored() {
    for (file, problem) in [
        ("causal_lm.yaml", "text_causal_language_modeling"),
        ("classification.yaml", "text_causal_classification_modeling"),
        ("regression.yaml", "text_causal_regression_modeling"),
        ("dpo.yaml", "text_dpo_modeling"),
    ] {
        let text = h2o_file(file);
        let cfg = Experiment::from_yaml_str(&text, file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(cfg.problem_type.as_str(), problem);
        assert_eq!(cfg.llm_backbone, "/models/backbone");
        let report = validate(&cfg);
        let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
        // H2O's default metric for generated answers is its GPT judge, with its model and template.
        if matches!(
            problem,
            "text_causal_language_modeling" | "text_dpo_modeling"
        ) {
            assert_eq!(cfg.prediction.metric.as_str(), "GPT");
            assert_eq!(cfg.prediction.metric_gpt_model, "gpt-3.5-turbo-0301");
            assert_eq!(cfg.prediction.metric_gpt_template.as_str(), "general");
        }
        // Each ignored key the file has is reported once, with why.
        for (key, why) in H2O_IGNORED {
            let (group, name) = key.split_once('.').unwrap();
            if !text.contains(&format!("{name}:")) || !text.contains(&format!("{group}:")) {
                continue;
            }
            let found: Vec<_> = report.warnings_for(key).collect();
            assert_eq!(found.len(), 1, "{file}: {key}: {found:?}");
            assert!(found[0].to_string().contains(why), "{}", found[0]);
        }
        // H2O's conventions: `lora_target_modules: ''` is every module, `gpus: ['0']` read as ids.
        assert!(cfg.training.lora_target_modules.is_empty());
        assert_eq!(cfg.environment.gpus, vec![0]);
        assert!(cfg.ignored.len() >= 15, "{file}: {}", cfg.ignored.len());
        // A run's saved config is Ferrotune's own: the ignored keys are not written back.
        let saved = cfg.to_yaml();
        assert!(
            !saved.contains("deepspeed") && !saved.contains("huggingface_branch"),
            "{saved}"
        );
        Experiment::from_yaml_str(&saved, "saved").unwrap();
    }
}

#[test]
fn h2o_value_conventions_are_read_and_what_cannot_run_is_refused_by_name() {
    let base = h2o_file("classification.yaml");
    let with = |from: &str, to: &str| {
        assert!(base.contains(from), "{from}");
        Experiment::from_yaml_str(&base.replace(from, to), "edited")
    };
    let cfg = with(
        "lora_target_modules: ''",
        "lora_target_modules: 'q_proj, v_proj'",
    )
    .unwrap();
    assert_eq!(
        cfg.training.lora_target_modules,
        vec![LoraModule::QProj, LoraModule::VProj]
    );
    let cfg = with("    - '0'\n", "    - ''\n").unwrap();
    assert!(cfg.environment.gpus.is_empty(), "H2O's `['']` means no GPU");
    // Default-only keys: accepted at H2O's default (what Ferrotune does), refused naming the key otherwise.
    for (key, accepted, why) in H2O_DEFAULT_ONLY {
        let (_, name) = key.split_once('.').unwrap();
        let line = format!(
            "{name}: {}",
            if accepted.is_empty() { "''" } else { accepted }
        );
        if !base.contains(&line) {
            continue;
        }
        let other = if *accepted == "true" {
            "false"
        } else if *accepted == "false" {
            "true"
        } else {
            "'layers.0'"
        };
        let err = with(&line, &format!("{name}: {other}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("`{key}`")) && err.contains(why),
            "{err}"
        );
    }
    // Keys of older H2O files: the per-piece limits are settings; forced embedding gradients only at false.
    let older = base.replace(
        "tokenizer:\n",
        "tokenizer:\n    max_length_prompt: 256.0\n    max_length_answer: 128\n",
    );
    let cfg = Experiment::from_yaml_str(&older, "older").unwrap();
    assert_eq!(
        (
            cfg.tokenizer.max_length_prompt,
            cfg.tokenizer.max_length_answer
        ),
        (256, 128)
    );
    assert!(!cfg.ignored.iter().any(|w| w.key.contains("max_length_")));
    let embedding = |v: &str| {
        Experiment::from_yaml_str(
            &base.replace(
                "architecture:\n",
                &format!("architecture:\n    force_embedding_gradients: {v}\n"),
            ),
            "older",
        )
    };
    embedding("false").unwrap();
    let err = embedding("true").unwrap_err().to_string();
    assert!(
        err.contains("`architecture.force_embedding_gradients`")
            && err.contains("full fine-tuning"),
        "{err}"
    );
    // Online trackers are refused with the offline choices named.
    let err = with("logger: None", "logger: Neptune")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs internet access") && err.contains("TensorBoard"),
        "{err}"
    );
    let cfg = with("logger: None", "logger: TensorBoard").unwrap();
    assert_eq!(cfg.logging.logger.as_str(), "TensorBoard");
}
