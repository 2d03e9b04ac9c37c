//! Backbone folders and GGUF files: `backbone register` runs the loader's checks without reading the weights,
//! and `generate` / `score` load them; both refuse with the loader's message.

use std::path::{Path, PathBuf};

use ferrotune_test_support::model_fixture;
use serde_json::Value;

use crate::catalogue::{Case, Check};
use crate::lab::{s, Lab};

pub const CASES: &[Case] = &[
    Case {
        id: "models.no-config",
        guards: "a folder without `config.json` is not registered; the message names the file and what a backbone folder holds",
        check: Check::Run(no_config),
    },
    Case {
        id: "models.config-not-json",
        guards: "a `config.json` that is not JSON is named, with the line and column of the mistake",
        check: Check::Run(config_not_json),
    },
    Case {
        id: "models.config-missing-field",
        guards: "a `config.json` without `hidden_size` names the field and is not called invalid JSON",
        check: Check::Run(config_missing_field),
    },
    Case {
        id: "models.unsupported-architecture",
        guards: "a GPT2LMHeadModel folder is refused by `backbone register`, listing the architectures that run",
        check: Check::Run(unsupported_architecture),
    },
    Case {
        id: "models.unsupported-architecture-generate",
        guards: "`generate --model` on a GPT2LMHeadModel folder says the same",
        check: Check::Run(unsupported_architecture_generate),
    },
    Case {
        id: "models.no-tokenizer",
        guards: "a folder without `tokenizer.json` is not registered, and `score` names the missing file",
        check: Check::Run(no_tokenizer),
    },
    Case {
        id: "models.truncated-safetensors",
        guards: "a `model.safetensors` cut in half is named as corrupt or truncated, by register and by generate",
        check: Check::Run(truncated_safetensors),
    },
    Case {
        id: "models.wrong-tensor-shape",
        guards: "a tensor whose shape does not fit `config.json` is named with both shapes, by register and by score",
        check: Check::Run(wrong_tensor_shape),
    },
    Case {
        id: "models.missing-tensor",
        guards: "weights without `model.norm.weight` are refused naming the tensor",
        check: Check::Run(missing_tensor),
    },
    Case {
        id: "models.missing-shard",
        guards: "a sharded folder missing one shard of its index names the shard and the index",
        check: Check::Run(missing_shard),
    },
    Case {
        id: "models.vocab-larger",
        guards: "`vocab_size` larger than the embedding's rows is an error naming both numbers",
        check: Check::Run(vocab_larger),
    },
    Case {
        id: "models.vocab-smaller",
        guards: "`vocab_size` smaller than the embedding's rows is an error naming both numbers, when generating too",
        check: Check::Run(vocab_smaller),
    },
    Case {
        id: "models.truncated-gguf",
        guards: "a GGUF file cut short is named as truncated and `--out` is not created",
        check: Check::Run(truncated_gguf),
    },
    Case {
        id: "models.random-gguf",
        guards: "random bytes named `.gguf` are not a GGUF file, on import and as `--model` (nothing left in the home)",
        check: Check::Run(random_gguf),
    },
    Case {
        id: "models.file-for-folder",
        guards: "a file given where a backbone folder is expected is called a file, not a missing folder",
        check: Check::Run(file_for_folder),
    },
    Case {
        id: "models.gguf-registered",
        guards: "`backbone register` of a `.gguf` file says to import it first",
        check: Check::Run(gguf_registered),
    },
    Case {
        id: "models.folder-to-import",
        guards: "`backbone import-gguf` of a folder says a Hugging Face folder needs no import",
        check: Check::Run(folder_to_import),
    },
    Case {
        id: "models.import-into-full-folder",
        guards: "`import-gguf --out` a folder that has files in it is refused and the folder kept",
        check: Check::Run(import_into_full_folder),
    },
    Case {
        id: "models.name-traversal",
        guards: "`backbone register --name ../../etc` is an invalid backbone name, naming `--name`",
        check: Check::Run(name_traversal),
    },
    Case {
        id: "models.import-bad-name",
        guards: "`import-gguf --register ../x` is refused before anything is written",
        check: Check::Run(import_bad_name),
    },
    Case {
        id: "models.name-taken",
        guards: "a backbone name already registered is refused; the first registration stays",
        check: Check::Run(name_taken),
    },
    Case {
        id: "models.missing-path",
        guards: "`--model` of a path that does not exist says so, with what a backbone is",
        check: Check::Run(missing_path),
    },
    Case {
        id: "models.bad-adapter",
        guards: "`--adapter` of a folder without `adapter_config.json` names the folder and what an adapter is",
        check: Check::Run(bad_adapter),
    },
    Case {
        id: "models.bad-dtype",
        guards: "`--dtype f8` lists the dtypes there are",
        check: Check::Run(bad_dtype),
    },
    Case {
        id: "models.export-bad-runs",
        guards: "`export` of a folder that is not a run, a run still running, one without trained weights, one whose backbone is gone, or into a non-empty folder is one paragraph with the fix; nothing is written and the folder's files are kept",
        check: Check::Elsewhere("crates/export/tests/export.rs::bad_runs_are_refused_with_one_paragraph_and_nothing_written"),
    },
    Case {
        id: "models.export-unknown-template",
        guards: "a GGUF export whose chat template is no family the Modelfile knows names the template and `--no-modelfile` before anything is written",
        check: Check::Elsewhere("crates/export/tests/export.rs::bad_runs_are_refused_with_one_paragraph_and_nothing_written"),
    },
    Case {
        id: "models.export-dora-adapter-gguf",
        guards: "a DoRA adapter is not written as a llama.cpp adapter (llama.cpp cannot apply it); the message points to the merged GGUF",
        check: Check::Elsewhere("crates/export/tests/export.rs::the_adapter_gguf_has_llama_cpp_names_and_alpha"),
    },
    Case {
        id: "models.export-head-as-gguf",
        guards: "a classifier is not exported as GGUF (llama.cpp runs causal LMs) and a full fine-tuning has no adapter to export; each says which format to use",
        check: Check::Elsewhere("crates/cli/tests/e2e/export.rs::a_classifier_exports_as_a_sequence_classifier_and_full_fine_tuning_without_an_adapter"),
    },
    Case {
        id: "models.export-bad-flags",
        guards: "`--dtype` with a GGUF format, a `--max-shard-size` that is no size, and an existing non-empty `--out` are refused without touching anything",
        check: Check::Elsewhere("crates/cli/tests/e2e/export.rs::an_int4_trained_adapter_exports_merged_gguf_and_as_an_adapter"),
    },
];

/// A copy of the tiny llama fixture whose `config.json` went through `edit`.
fn with_config(lab: &Lab, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = lab.model_copy("llama3_rope", name);
    let path = dir.join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    dir
}

fn register(lab: &Lab, dir: &Path, needles: &[&str]) {
    lab.refuses(
        &["backbone", "register", &s(dir), "--name", "broken"],
        needles,
    );
}

fn generate(lab: &Lab, model: &Path, needles: &[&str]) {
    lab.refuses(
        &[
            "generate",
            "--model",
            &s(model),
            "--prompt",
            "hi",
            "--max-new-tokens",
            "2",
        ],
        needles,
    );
}

fn no_config(lab: &Lab) {
    let dir = lab.model_copy("llama3_rope", "no-config");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    register(
        lab,
        &dir,
        &["no-config", "`config.json` is missing", "help:"],
    );
    generate(lab, &dir, &["no-config", "config.json", "help:"]);
}

fn config_not_json(lab: &Lab) {
    let dir = lab.model_copy("llama3_rope", "not-json");
    std::fs::write(dir.join("config.json"), "{\"hidden_size\": 64,\n oops}").unwrap();
    register(
        lab,
        &dir,
        &["config.json", "not valid JSON", "line 2", "help:"],
    );
}

fn config_missing_field(lab: &Lab) {
    let dir = with_config(lab, "no-hidden-size", |c| {
        c.as_object_mut().unwrap().remove("hidden_size");
    });
    let o = lab.refuses(
        &["backbone", "register", &s(&dir), "--name", "broken"],
        &["config.json", "missing field `hidden_size`", "help:"],
    );
    let err = crate::lab::stderr(&o);
    assert!(!err.contains("not valid JSON"), "{err}");
}

fn gpt2(lab: &Lab, name: &str) -> PathBuf {
    with_config(lab, name, |c| {
        c["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
        c["model_type"] = "gpt2".into();
    })
}

fn unsupported_architecture(lab: &Lab) {
    let dir = gpt2(lab, "gpt2");
    register(
        lab,
        &dir,
        &["`GPT2LMHeadModel`", "help:", "LlamaForCausalLM"],
    );
}

fn unsupported_architecture_generate(lab: &Lab) {
    let dir = gpt2(lab, "gpt2-generate");
    generate(
        lab,
        &dir,
        &["`GPT2LMHeadModel`", "help:", "Qwen2ForCausalLM"],
    );
}

fn no_tokenizer(lab: &Lab) {
    let dir = lab.model_copy("llama3_rope", "no-tokenizer");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    register(lab, &dir, &["`tokenizer.json` is missing", "help:"]);
    let input = lab.file("no-tokenizer.jsonl", "{\"text\": \"hello\"}\n");
    lab.refuses(
        &["score", "--model", &s(&dir), "--input", &input],
        &["tokenizer.json", "help:"],
    );
}

fn truncated_safetensors(lab: &Lab) {
    let dir = lab.model_copy("llama3_rope", "truncated");
    let weights = dir.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    register(lab, &dir, &["model.safetensors", "truncated", "help:"]);
    generate(lab, &dir, &["model.safetensors", "truncated", "help:"]);
}

/// Rewrites the fixture's weights with `edit` applied to the (name, shape, bytes) of every tensor.
fn rewrite_weights(dir: &Path, edit: impl Fn(&str, Vec<usize>) -> Option<Vec<usize>>) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| {
            let shape = edit(&name, view.shape().to_vec())?;
            let view =
                safetensors::tensor::TensorView::new(view.dtype(), shape, view.data()).unwrap();
            Some((name, view))
        })
        .collect();
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(&path, out).unwrap();
}

fn wrong_tensor_shape(lab: &Lab) {
    // v_proj is [32, 64]; stored as [64, 32] the bytes still fit, only the shape is wrong.
    let dir = lab.model_copy("llama3_rope", "wrong-shape");
    rewrite_weights(&dir, |name, shape| {
        Some(if name == "model.layers.1.self_attn.v_proj.weight" {
            vec![shape[1], shape[0]]
        } else {
            shape
        })
    });
    let needles = [
        "model.layers.1.self_attn.v_proj.weight",
        "[64, 32]",
        "[32, 64]",
        "help:",
    ];
    register(lab, &dir, &needles);
    let input = lab.file("wrong-shape.jsonl", "{\"text\": \"hello\"}\n");
    lab.refuses(&["score", "--model", &s(&dir), "--input", &input], &needles);
}

fn missing_tensor(lab: &Lab) {
    let dir = lab.model_copy("llama3_rope", "missing-tensor");
    rewrite_weights(&dir, |name, shape| {
        (name != "model.norm.weight").then_some(shape)
    });
    register(lab, &dir, &["`model.norm.weight` is missing", "help:"]);
}

fn missing_shard(lab: &Lab) {
    let dir = lab.model_copy("mistral_sharded", "missing-shard");
    std::fs::remove_file(dir.join("model-00002-of-00003.safetensors")).unwrap();
    let needles = [
        "model-00002-of-00003.safetensors",
        "model.safetensors.index.json",
        "help:",
    ];
    register(lab, &dir, &needles);
    generate(lab, &dir, &needles);
}

fn vocab_larger(lab: &Lab) {
    let dir = with_config(lab, "vocab-larger", |c| c["vocab_size"] = 325.into());
    register(lab, &dir, &["`vocab_size: 325`", "320 rows", "help:"]);
}

fn vocab_smaller(lab: &Lab) {
    let dir = with_config(lab, "vocab-smaller", |c| c["vocab_size"] = 315.into());
    register(lab, &dir, &["`vocab_size: 315`", "320 rows", "help:"]);
    generate(lab, &dir, &["`vocab_size: 315`", "320 rows", "help:"]);
}

fn gguf_fixture() -> PathBuf {
    model_fixture("gguf_llama").join("model.gguf")
}

fn truncated_gguf(lab: &Lab) {
    let bytes = std::fs::read(gguf_fixture()).unwrap();
    let file = lab.file("cut.gguf", &bytes[..3000]);
    let out = lab.path("cut-out");
    lab.refuses(
        &["backbone", "import-gguf", &file, "--out", &s(&out)],
        &["cut.gguf", "truncated", "help:"],
    );
    assert!(!out.exists(), "a failed import leaves no `--out` folder");
}

fn random_gguf(lab: &Lab) {
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = lab.file("noise.gguf", noise);
    let out = lab.path("noise-out");
    let needles = ["noise.gguf", "is not a GGUF file", "help:"];
    lab.refuses(
        &["backbone", "import-gguf", &file, "--out", &s(&out)],
        &needles,
    );
    assert!(!out.exists());
    generate(lab, Path::new(&file), &needles);
}

fn file_for_folder(lab: &Lab) {
    let config = model_fixture("llama3_rope").join("config.json");
    register(lab, &config, &["config.json", "is a file", "help:"]);
    generate(lab, &config, &["config.json", "is a file", "help:"]);
}

fn gguf_registered(lab: &Lab) {
    register(
        lab,
        &gguf_fixture(),
        &["model.gguf", ".gguf", "imported first"],
    );
}

fn folder_to_import(lab: &Lab) {
    let out = lab.path("folder-import-out");
    let o = lab.refuses(
        &[
            "backbone",
            "import-gguf",
            &s(&model_fixture("llama3_rope")),
            "--out",
            &s(&out),
        ],
        &[
            "llama3_rope",
            "is a folder",
            "needs no import",
            "register",
            "help:",
        ],
    );
    assert!(
        !crate::lab::stderr(&o).contains("os error"),
        "no raw OS error"
    );
    assert!(!out.exists());
}

fn import_into_full_folder(lab: &Lab) {
    let out = lab.path("full-out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    lab.refuses(
        &[
            "backbone",
            "import-gguf",
            &s(&gguf_fixture()),
            "--out",
            &s(&out),
        ],
        &["full-out", "not empty", "help:"],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
}

fn name_traversal(lab: &Lab) {
    let tiny = model_fixture("llama3_rope");
    lab.refuses(
        &["backbone", "register", &s(&tiny), "--name", "../../etc"],
        &["invalid backbone name `../../etc`", "help:", "`--name`"],
    );
}

fn import_bad_name(lab: &Lab) {
    let out = lab.path("bad-name-out");
    lab.refuses(
        &[
            "backbone",
            "import-gguf",
            &s(&gguf_fixture()),
            "--out",
            &s(&out),
            "--register",
            "../x",
        ],
        &["invalid backbone name `../x`", "`--register`"],
    );
    assert!(!out.exists(), "refused before the import wrote anything");
}

fn name_taken(lab: &Lab) {
    let other = model_fixture("qwen2_tied");
    lab.refuses(
        &["backbone", "register", &s(&other), "--name", "tiny"],
        &["`tiny` is already registered", "help:", "`--name`"],
    );
}

fn missing_path(lab: &Lab) {
    generate(
        lab,
        &lab.path("no-such-model"),
        &["no-such-model", "does not exist", "help:"],
    );
}

fn bad_adapter(lab: &Lab) {
    let adapter = lab.path("not-an-adapter");
    std::fs::create_dir_all(&adapter).unwrap();
    lab.refuses(
        &[
            "generate",
            "--model",
            &s(&model_fixture("llama3_rope")),
            "--adapter",
            &s(&adapter),
            "--prompt",
            "hi",
        ],
        &["not-an-adapter", "adapter_config.json", "help:"],
    );
}

fn bad_dtype(lab: &Lab) {
    lab.refuses(
        &["score", "--input", "x.jsonl", "--dtype", "f8"],
        &["'f8'", "--dtype", "possible values", "bf16"],
    );
}
