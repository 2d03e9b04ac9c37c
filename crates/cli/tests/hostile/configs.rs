//! Experiment files and settings: `config validate`, `train --config` and `experiment start` refuse them
//! before anything is written (no output folder, nothing queued).

use std::path::PathBuf;

use ferrotune_test_support::{experiment_yaml, write_arithmetic_data};

use crate::catalogue::{Case, Check};
use crate::lab::{s, Lab};

pub const CASES: &[Case] = &[
    Case {
        id: "configs.classes-against-the-loss",
        guards: "classification whose `num_classes` does not fit the loss (CrossEntropyLoss with 1 class) is refused, naming the setting and the fix",
        check: Check::Run(classes_against_the_loss),
    },
    Case {
        id: "configs.several-answer-columns-for-text",
        guards: "several `answer_column`s on a causal-LM run are refused: only classification and regression take several",
        check: Check::Run(several_answer_columns_for_text),
    },
    Case {
        id: "configs.quantized-full-fine-tuning",
        guards: "full fine-tuning (`training.lora: false`) of an int4 backbone is refused before the run, pointing at LoRA",
        check: Check::Run(quantized_full_fine_tuning),
    },
    Case {
        id: "configs.bad-labels",
        guards: "a label outside `num_classes`, a non-numeric regression target, more label names than classes, an unseen validation label and one class only are errors naming the file, row and column",
        check: Check::Elsewhere("crates/train/tests/heads.rs::bad_labels_are_refused_before_a_run_folder_exists"),
    },
    Case {
        id: "configs.dpo-missing-rejected-column",
        guards: "a DPO run on data without its rejected-answer column names the column, the file's columns and the setting",
        check: Check::Run(dpo_missing_rejected_column),
    },
    Case {
        id: "configs.dpo-without-lora",
        guards: "DPO with `training.lora: false` is refused: its reference model is the backbone with the adapters off",
        check: Check::Run(dpo_without_lora),
    },
    Case {
        id: "configs.loss-of-another-type",
        guards: "a preference loss on a causal-LM run (or the reverse) names the type's own losses",
        check: Check::Run(loss_of_another_type),
    },
    Case {
        id: "configs.dpo-chosen-equals-rejected",
        guards: "pairs whose rejected answers all equal the chosen ones are refused before training, naming both columns",
        check: Check::Elsewhere("crates/train/tests/dpo.rs::bad_pairs_are_refused_before_a_run_folder_exists"),
    },
    Case {
        id: "configs.yaml-syntax",
        guards: "an experiment file that is not YAML is named with the line, for `config validate` and `train`",
        check: Check::Run(yaml_syntax),
    },
    Case {
        id: "configs.alias-bomb",
        guards: "a YAML alias bomb (anchors expanding a billion times) is refused at once, saying why",
        check: Check::Run(alias_bomb),
    },
    Case {
        id: "configs.unknown-key",
        guards: "a misspelt key (`training.lerning_rate`) suggests the closest setting",
        check: Check::Run(unknown_key),
    },
    Case {
        id: "configs.wrong-type",
        guards: "`epochs: two` names the key and the type it expects",
        check: Check::Run(wrong_type),
    },
    Case {
        id: "configs.negative-epochs",
        guards: "`--training.epochs -1` names the key and the whole numbers it takes",
        check: Check::Run(negative_epochs),
    },
    Case {
        id: "configs.learning-rate-zero",
        guards: "`learning_rate: 0` is refused naming the key and its range",
        check: Check::Run(learning_rate_zero),
    },
    Case {
        id: "configs.learning-rate-negative",
        guards: "`train` with a negative learning rate refuses before creating its output folder",
        check: Check::Run(learning_rate_negative),
    },
    Case {
        id: "configs.lora-r-zero",
        guards: "`lora_r: 0` is refused with its range",
        check: Check::Run(lora_r_zero),
    },
    Case {
        id: "configs.batch-size-zero",
        guards: "`batch_size: 0` is refused with its range",
        check: Check::Run(batch_size_zero),
    },
    Case {
        id: "configs.max-length-one",
        guards: "`max_length: 1` is refused with its range and the length the markers need",
        check: Check::Run(max_length_one),
    },
    Case {
        id: "configs.unknown-optimizer",
        guards: "an unknown optimizer lists the optimizers and suggests the closest",
        check: Check::Run(unknown_optimizer),
    },
    Case {
        id: "configs.gpt-judge-endpoint",
        guards: "`prediction.metric: GPT` with an endpoint that is not an http(s) address is refused once, naming the setting",
        check: Check::Run(gpt_judge_endpoint),
    },
    Case {
        id: "configs.list-for-plain-setting",
        guards: "a list of values for a setting that is not grid-enabled says which settings take lists",
        check: Check::Run(list_for_plain_setting),
    },
    Case {
        id: "configs.missing-data-file",
        guards: "`train` on a data file that does not exist names the key and the path",
        check: Check::Run(missing_data_file),
    },
    Case {
        id: "configs.missing-column",
        guards: "`train` with an answer column the data lacks lists the columns it has, before training",
        check: Check::Run(missing_column),
    },
    Case {
        id: "configs.int4-without-lora",
        guards: "an int4 backbone without LoRA is refused with the two ways out",
        check: Check::Run(int4_without_lora),
    },
    Case {
        id: "configs.output-under-file",
        guards: "an `output_directory` inside a file is refused and the file is not touched",
        check: Check::Run(output_under_file),
    },
    Case {
        id: "configs.missing-backbone",
        guards: "an `llm_backbone` path that does not exist is named with what a backbone is",
        check: Check::Run(missing_backbone),
    },
    Case {
        id: "configs.missing-experiment-file",
        guards: "`config validate` of a file that does not exist names it and says to check the path",
        check: Check::Run(missing_experiment_file),
    },
    Case {
        id: "configs.stray-argument",
        guards: "a second file after the experiment file is explained as not a `--section.field` setting",
        check: Check::Run(stray_argument),
    },
    Case {
        id: "configs.init-over-a-file",
        guards: "`config init --out` an existing file refuses to overwrite it without `--force`",
        check: Check::Run(init_over_a_file),
    },
    Case {
        id: "configs.resume-nothing",
        guards: "`train --resume` of a folder that holds no run says what `--resume` takes",
        check: Check::Run(resume_nothing),
    },
    Case {
        id: "configs.start-invalid",
        guards: "`experiment start` with invalid settings queues nothing",
        check: Check::Run(start_invalid),
    },
    Case {
        id: "configs.start-unknown-dataset",
        guards: "`experiment start --dataset` of a dataset that is not registered names it and queues nothing",
        check: Check::Run(start_unknown_dataset),
    },
];

/// Writes the experiment `name` (the tiny backbone on an arithmetic set, output under `out/`) with `extra`
/// appended, and returns its path and its output folder.
fn experiment(lab: &Lab, name: &str, extra: &str) -> (String, PathBuf) {
    let data = write_arithmetic_data(lab.scratch(), &format!("{name}-data.json"), 20);
    let out = lab.path("out");
    let yaml = format!("{}{extra}", experiment_yaml(name, &out, &data));
    (lab.file(&format!("{name}.yaml"), yaml), out.join(name))
}

/// `config validate FILE OVERRIDES…` refuses with `needles`; so does `train --config`, which must not create
/// its output folder.
fn both_refuse(lab: &Lab, name: &str, overrides: &[&str], needles: &[&str]) {
    let (cfg, out) = experiment(lab, name, "");
    let mut args = vec!["config", "validate", &cfg];
    args.extend(overrides);
    lab.refuses(&args, needles);
    let mut args = vec!["train", "--config", &cfg];
    args.extend(overrides);
    lab.refuses(&args, needles);
    assert!(!out.exists(), "a refused run leaves no output folder");
}

fn yaml_syntax(lab: &Lab) {
    let cfg = lab.file("syntax.yaml", "training:\n  epochs: [1\n  batch_size: 4\n");
    for args in [["config", "validate", &cfg], ["train", "--config", &cfg]] {
        lab.refuses(&args, &["syntax.yaml", "not valid YAML", "line", "help:"]);
    }
}

fn alias_bomb(lab: &Lab) {
    let mut yaml = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        let refs = vec![format!("*{prev}"); 9].join(",");
        yaml.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    let cfg = lab.file("bomb.yaml", yaml);
    let started = std::time::Instant::now();
    lab.refuses(
        &["config", "validate", &cfg],
        &["bomb.yaml", "not valid YAML", "help:", "aliases"],
    );
    assert!(
        started.elapsed().as_secs() < 10,
        "the bomb took {:?}",
        started.elapsed()
    );
}

fn unknown_key(lab: &Lab) {
    let (cfg, _) = experiment(lab, "typo", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("learning_rate", "lerning_rate");
    std::fs::write(&cfg, text).unwrap();
    lab.refuses(
        &["config", "validate", &cfg],
        &[
            "typo.yaml",
            "`training.lerning_rate` is not a setting",
            "did you mean `training.learning_rate`",
        ],
    );
}

fn wrong_type(lab: &Lab) {
    let cfg = lab.file("two.yaml", "training:\n  epochs: two\n");
    lab.refuses(
        &["config", "validate", &cfg],
        &[
            "two.yaml",
            "`training.epochs` expects an integer, found `two`",
        ],
    );
}

fn negative_epochs(lab: &Lab) {
    both_refuse(
        lab,
        "epochs-negative",
        &["--training.epochs", "-1"],
        &["`training.epochs`", "`-1`", "help: use a whole number"],
    );
}

fn learning_rate_zero(lab: &Lab) {
    let (cfg, _) = experiment(lab, "lr-zero", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("learning_rate: 0.01", "learning_rate: 0");
    std::fs::write(&cfg, text).unwrap();
    lab.refuses(
        &["config", "validate", &cfg],
        &[
            "`training.learning_rate` must be > 0, found `0`",
            "lr-zero.yaml",
        ],
    );
}

fn learning_rate_negative(lab: &Lab) {
    both_refuse(
        lab,
        "lr-negative",
        &["--training.learning_rate", "-0.001"],
        &["`training.learning_rate`", "must be > 0", "-0.001"],
    );
}

fn lora_r_zero(lab: &Lab) {
    both_refuse(
        lab,
        "lora-r-zero",
        &["--training.lora_r", "0"],
        &["`training.lora_r` must be in [1, 4096]"],
    );
}

fn batch_size_zero(lab: &Lab) {
    both_refuse(
        lab,
        "batch-zero",
        &["--training.batch_size", "0"],
        &["`training.batch_size` must be >= 1"],
    );
}

fn max_length_one(lab: &Lab) {
    both_refuse(
        lab,
        "max-length-one",
        &["--tokenizer.max_length", "1"],
        &["`tokenizer.max_length` must be in [16", "found `1`"],
    );
}

fn unknown_optimizer(lab: &Lab) {
    both_refuse(
        lab,
        "optimizer",
        &["--training.optimizer", "Adamm"],
        &[
            "`training.optimizer`",
            "`Adamm`",
            "`AdamW`",
            "did you mean `Adam`",
        ],
    );
}

fn gpt_judge_endpoint(lab: &Lab) {
    let (cfg, _) = experiment(lab, "gpt-metric", "");
    for command in [&["config", "validate"][..], &["train", "--config"]] {
        let args = [
            command,
            &[
                cfg.as_str(),
                "--prediction.metric",
                "GPT",
                "--prediction.metric_gpt_api_base",
                "localhost:8000",
            ],
        ]
        .concat();
        let o = lab.refuses(
            &args,
            &[
                "`prediction.metric_gpt_api_base` is `localhost:8000`",
                "not an http(s) address",
            ],
        );
        let text = crate::lab::printed(&o);
        assert_eq!(
            text.matches("not an http(s) address").count(),
            1,
            "said once: {text}"
        );
    }
}

fn list_for_plain_setting(lab: &Lab) {
    let cfg = lab.file("lora-list.yaml", "training:\n  lora: [true, false]\n");
    lab.refuses(
        &["config", "validate", &cfg],
        &[
            "`training.lora`",
            "found a list",
            "help: only grid-enabled settings take a list",
        ],
    );
}

fn missing_data_file(lab: &Lab) {
    let missing = lab.path("no-such-data.csv");
    both_refuse(
        lab,
        "no-data",
        &["--dataset.train_dataframe", &s(&missing)],
        &[
            "`dataset.train_dataframe`",
            "no-such-data.csv",
            "does not exist",
            "help:",
        ],
    );
}

fn missing_column(lab: &Lab) {
    both_refuse(
        lab,
        "no-column",
        &["--dataset.answer_column", "reply"],
        &[
            "`dataset.answer_column`",
            "no column `reply`",
            "`instruction`",
            "`output`",
            "help:",
        ],
    );
}

fn int4_without_lora(lab: &Lab) {
    both_refuse(
        lab,
        "int4-full",
        &[
            "--architecture.backbone_dtype",
            "int4",
            "--training.lora",
            "false",
        ],
        &[
            "`architecture.backbone_dtype` is `int4`, which needs LoRA",
            "training.lora: true",
            "help:",
        ],
    );
}

fn output_under_file(lab: &Lab) {
    let file = lab.file("not-a-folder.txt", "mine");
    let under = format!("{file}/run");
    both_refuse(
        lab,
        "under-file",
        &["--output_directory", &under],
        &[
            "`output_directory`",
            "not-a-folder.txt",
            "which is a file",
            "help:",
        ],
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

fn missing_backbone(lab: &Lab) {
    let missing = lab.path("no-such-backbone");
    both_refuse(
        lab,
        "no-backbone",
        &["--llm_backbone", &s(&missing)],
        &[
            "`llm_backbone`",
            "no-such-backbone",
            "does not exist",
            "help:",
        ],
    );
}

fn missing_experiment_file(lab: &Lab) {
    lab.refuses(
        &["config", "validate", "no-such-experiment.yaml"],
        &["no-such-experiment.yaml", "help: check the path"],
    );
}

fn stray_argument(lab: &Lab) {
    let (cfg, _) = experiment(lab, "stray", "");
    lab.refuses(
        &["config", "show", &cfg, "other.yaml"],
        &["`other.yaml` is not a `--section.field` setting", "help:"],
    );
}

fn init_over_a_file(lab: &Lab) {
    let file = lab.file("mine.yaml", "# my notes\n");
    lab.refuses(
        &["config", "init", "--out", &file],
        &["mine.yaml", "already exists", "--force"],
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# my notes\n");
}

fn resume_nothing(lab: &Lab) {
    let empty = lab.path("not-a-run");
    std::fs::create_dir_all(&empty).unwrap();
    lab.refuses(
        &["train", "--resume", &s(&empty)],
        &[
            "not-a-run",
            "`cfg.yaml`",
            "help: --resume takes the output directory",
        ],
    );
}

fn start_invalid(lab: &Lab) {
    let (cfg, _) = experiment(lab, "start-bad", "");
    lab.refuses(
        &["experiment", "start", &cfg, "--training.learning_rate", "0"],
        &["`training.learning_rate` must be > 0", "help:"],
    );
}

fn start_unknown_dataset(lab: &Lab) {
    let (cfg, _) = experiment(lab, "start-nodata", "");
    lab.refuses(
        &["experiment", "start", &cfg, "--dataset", "nope"],
        &["no dataset named `nope`", "help:"],
    );
}

fn dpo_missing_rejected_column(lab: &Lab) {
    both_refuse(
        lab,
        "dpo-columns",
        &[
            "--problem_type",
            "text_dpo_modeling",
            "--dataset.answer_column",
            "output",
        ],
        &[
            "`dataset.rejected_answer_column`",
            "no column `rejected_response`",
            "`instruction`",
            "help:",
        ],
    );
}

fn classes_against_the_loss(lab: &Lab) {
    both_refuse(
        lab,
        "classes",
        &[
            "--problem_type",
            "text_causal_classification_modeling",
            "--training.loss_function",
            "CrossEntropyLoss",
        ],
        &["`dataset.num_classes`", "needs at least 2 classes", "help:"],
    );
}

fn several_answer_columns_for_text(lab: &Lab) {
    both_refuse(
        lab,
        "answers",
        &["--dataset.answer_column", "[output, input]"],
        &["`dataset.answer_column`", "names 2 columns", "help:"],
    );
}

fn quantized_full_fine_tuning(lab: &Lab) {
    both_refuse(
        lab,
        "full-int4",
        &[
            "--training.lora",
            "false",
            "--architecture.backbone_dtype",
            "int4",
        ],
        &[
            "`architecture.backbone_dtype`",
            "cannot be fine-tuned in full",
            "QLoRA",
        ],
    );
}

fn dpo_without_lora(lab: &Lab) {
    both_refuse(
        lab,
        "dpo-full",
        &[
            "--problem_type",
            "text_dpo_modeling",
            "--training.lora",
            "false",
        ],
        &[
            "`training.lora`",
            "reference model is the backbone with the adapters switched off",
        ],
    );
}

fn loss_of_another_type(lab: &Lab) {
    both_refuse(
        lab,
        "wrong-loss",
        &["--training.loss_function", "DPOLoss"],
        &[
            "`training.loss_function`",
            "not a loss of `problem_type: text_causal_language_modeling`",
            "`TokenAveragedCrossEntropy`",
        ],
    );
}
