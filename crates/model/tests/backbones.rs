//! Parity of the decoder, tokenizer, chat template and generation with transformers, on the tiny random-init
//! fixtures written by `tools/fixtures/tiny_models.py` (see each fixture's SOURCE.md), and the bad-input errors.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use ferrotune_model::{generate, Backbone, GenerationConfig, Message};
use ferrotune_test_support::{max_diff, model_fixture};
use serde_json::Value;

const CASES: [&str; 3] = ["llama3_rope", "mistral_sharded", "qwen2_tied"];

fn fixture(case: &str) -> PathBuf {
    model_fixture(case)
}

fn load(case: &str) -> Backbone {
    Backbone::load_folder(&fixture(case), DType::F32, &Device::Cpu).unwrap()
}

fn expected(case: &str) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(case).join("expected.safetensors"), &Device::Cpu)
        .unwrap()
}

fn expected_text(case: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture(case).join("expected_text.json")).unwrap(),
    )
    .unwrap()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn logits_match_transformers_in_f32() {
    for case in CASES {
        let backbone = load(case);
        let exp = expected(case);
        let ids = exp["input_ids"].to_dtype(DType::U32).unwrap();
        let logits = backbone.model.forward(&ids, None).unwrap();
        let diff = max_diff(&logits, &exp["logits"]);
        assert!(diff <= 1e-4, "{case}: max |Δlogit| = {diff}");
    }
}

#[test]
fn incremental_decoding_with_the_kv_cache_matches() {
    for case in CASES {
        let backbone = load(case);
        let exp = expected(case);
        let row = exp["input_ids"]
            .to_dtype(DType::U32)
            .unwrap()
            .narrow(0, 0, 1)
            .unwrap();
        let mut cache = backbone.model.new_cache();
        backbone
            .model
            .forward(&row.narrow(1, 0, 6).unwrap(), Some(&mut cache))
            .unwrap();
        let step = backbone
            .model
            .forward(&row.narrow(1, 6, 3).unwrap(), Some(&mut cache))
            .unwrap();
        let diff = max_diff(&step, &exp["logits_step"]);
        assert!(diff <= 1e-4, "{case}: max |Δlogit| with cache = {diff}");
    }
}

#[test]
fn loss_matches_transformers_labels_loss() {
    for case in CASES {
        let backbone = load(case);
        let exp = expected(case);
        let ids = exp["input_ids"].to_dtype(DType::U32).unwrap();
        let (b, t) = ids.dims2().unwrap();
        let mut total = 0f64;
        for r in 0..b {
            let row: Vec<u32> = ids.get(r).unwrap().to_vec1().unwrap();
            total -= backbone
                .model
                .token_log_probs(&row)
                .unwrap()
                .iter()
                .map(|&x| x as f64)
                .sum::<f64>();
        }
        let loss = total / (b * (t - 1)) as f64;
        let want = exp["loss"].to_scalar::<f32>().unwrap() as f64;
        assert!(
            (loss - want).abs() / want <= 1e-5,
            "{case}: loss {loss} vs {want}"
        );
    }
}

#[test]
fn bf16_compute_stays_close_to_f32() {
    let backbone =
        Backbone::load_folder(&fixture("qwen2_tied"), DType::BF16, &Device::Cpu).unwrap();
    let exp = expected("qwen2_tied");
    let ids = exp["input_ids"].to_dtype(DType::U32).unwrap();
    let logits = backbone.model.forward(&ids, None).unwrap();
    assert_eq!(logits.dtype(), DType::F32);
    let diff = max_diff(&logits, &exp["logits"]);
    assert!(diff < 0.5, "bf16 max |Δlogit| = {diff}");
    let pred = logits
        .argmax(D::Minus1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    let want = exp["logits"]
        .argmax(D::Minus1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    let agree = pred.iter().zip(&want).filter(|(a, b)| a == b).count();
    assert!(
        agree * 10 >= pred.len() * 8,
        "bf16 argmax agrees on {agree}/{}",
        pred.len()
    );
}

#[test]
fn tokenizer_matches_transformers() {
    for case in CASES {
        let backbone = load(case);
        let exp = expected_text(case);
        for (i, text) in exp["texts"].as_array().unwrap().iter().enumerate() {
            let text = text.as_str().unwrap();
            let ids = backbone.tokenizer.encode(text, true).unwrap();
            assert_eq!(ids, ids_of(&exp["ids"][i]), "{case}: ids of {text:?}");
            let decoded = backbone.tokenizer.decode(&ids, true).unwrap();
            assert_eq!(
                decoded,
                exp["decoded"][i].as_str().unwrap(),
                "{case}: decode of {text:?}"
            );
        }
    }
}

fn messages(v: &Value) -> Vec<Message> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn chat_templates_render_like_transformers() {
    for case in CASES {
        let backbone = load(case);
        let exp = expected_text(case);
        let chat = &exp["chat"];
        let template = backbone
            .tokenizer
            .chat_template()
            .expect("fixture has a chat template");
        let msgs = messages(&chat["messages"]);
        assert_eq!(
            template.render(&msgs, true).unwrap(),
            chat["rendered_with_generation_prompt"].as_str().unwrap(),
            "{case}"
        );
        assert_eq!(
            template.render(&msgs, false).unwrap(),
            chat["rendered_without"].as_str().unwrap(),
            "{case}"
        );
        if let Some(no_system) = chat.get("messages_no_system") {
            assert_eq!(
                template.render(&messages(no_system), true).unwrap(),
                chat["rendered_no_system_with_generation_prompt"]
                    .as_str()
                    .unwrap(),
                "{case}"
            );
        }
        if let Some(err) = chat.get("error_case") {
            let msg = template
                .render(&messages(&err["messages"]), true)
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains(err["error_message"].as_str().unwrap()),
                "{case}: {msg}"
            );
        }
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    for case in CASES {
        let backbone = load(case);
        let exp = expected_text(case);
        let gen = &exp["generation"];
        let prompt = ids_of(&gen["prompt_ids"]);
        let want = ids_of(&gen["greedy_ids"]);
        let cfg = GenerationConfig {
            max_new_tokens: want.len(),
            ..GenerationConfig::default()
        };
        let mut streamed = String::new();
        let out = generate(
            &backbone.model,
            &backbone.tokenizer,
            &prompt,
            &cfg,
            &mut |t| streamed.push_str(t),
        )
        .unwrap();
        assert_eq!(out.token_ids, want, "{case}");
        assert_eq!(
            streamed, out.text,
            "{case}: streamed text equals the final text"
        );
    }
}

#[test]
fn beam_search_matches_transformers() {
    let backbone = load("qwen2_tied");
    let exp = expected_text("qwen2_tied");
    let beam = &exp["generation"]["beam"];
    let cfg = GenerationConfig {
        num_beams: beam["num_beams"].as_u64().unwrap() as usize,
        max_new_tokens: beam["max_new_tokens"].as_u64().unwrap() as usize,
        ..GenerationConfig::default()
    };
    let out = generate(
        &backbone.model,
        &backbone.tokenizer,
        &ids_of(&beam["prompt_ids"]),
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(out.token_ids, ids_of(&beam["beam_ids"]));
}

#[test]
fn max_time_ends_generation_with_length() {
    let backbone = load("llama3_rope");
    let exp = expected_text("llama3_rope");
    let prompt = ids_of(&exp["generation"]["prompt_ids"]);
    let greedy = ids_of(&exp["generation"]["greedy_ids"]);
    let run = |max_time| {
        let cfg = GenerationConfig {
            max_new_tokens: 12,
            max_time,
            ..Default::default()
        };
        generate(
            &backbone.model,
            &backbone.tokenizer,
            &prompt,
            &cfg,
            &mut |_| {},
        )
        .unwrap()
    };
    // No time at all: nothing is generated, and it says so as a length limit (as transformers' `max_time`).
    let out = run(Some(std::time::Duration::ZERO));
    assert!(out.token_ids.is_empty());
    assert_eq!(out.finish_reason, ferrotune_model::FinishReason::Length);
    // Plenty of time: the same greedy answer as without a limit.
    let out = run(Some(std::time::Duration::from_secs(600)));
    assert_eq!(out.token_ids, greedy[..out.token_ids.len()]);
    assert!(!out.token_ids.is_empty());
}

#[test]
fn stop_tokens_min_tokens_and_stop_strings() {
    let backbone = load("llama3_rope");
    let exp = expected_text("llama3_rope");
    let prompt = ids_of(&exp["generation"]["prompt_ids"]);
    let greedy = ids_of(&exp["generation"]["greedy_ids"]);
    // Stopping on the third greedy token ends before it.
    let cfg = GenerationConfig {
        max_new_tokens: 12,
        stop_token_ids: vec![greedy[2]],
        ..Default::default()
    };
    let out = generate(
        &backbone.model,
        &backbone.tokenizer,
        &prompt,
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    if !greedy[..2].contains(&greedy[2]) {
        assert_eq!(out.token_ids, greedy[..2]);
        assert_eq!(out.finish_reason, ferrotune_model::FinishReason::StopToken);
    }
    // A stop string cuts the text before it, and streaming never shows it.
    let full = backbone.tokenizer.decode(&greedy, true).unwrap();
    let stop: String = full
        .chars()
        .skip(full.chars().count() / 2)
        .take(2)
        .collect();
    let cfg = GenerationConfig {
        max_new_tokens: 12,
        stop_strings: vec![stop.clone()],
        ..Default::default()
    };
    let mut streamed = String::new();
    let out = generate(
        &backbone.model,
        &backbone.tokenizer,
        &prompt,
        &cfg,
        &mut |t| streamed.push_str(t),
    )
    .unwrap();
    assert!(
        !out.text.contains(&stop) && full.starts_with(&out.text),
        "{:?} / {stop:?}",
        out.text
    );
    assert_eq!(streamed, out.text);
    // Seeded sampling is reproducible.
    let cfg = GenerationConfig {
        max_new_tokens: 8,
        temperature: 1.0,
        top_k: Some(20),
        top_p: Some(0.9),
        seed: 3,
        ..Default::default()
    };
    let a = generate(
        &backbone.model,
        &backbone.tokenizer,
        &prompt,
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    let b = generate(
        &backbone.model,
        &backbone.tokenizer,
        &prompt,
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(a.token_ids, b.token_ids);
    assert_eq!(a.token_ids.len(), 8);
}

mod bad_input {
    use super::*;

    fn copy_fixture(case: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        ferrotune_test_support::copy_dir(&fixture(case), dir.path());
        dir
    }

    fn error_of(dir: &Path) -> String {
        match Backbone::load_folder(dir, DType::F32, &Device::Cpu) {
            Ok(_) => panic!("loading {} should fail", dir.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn folder_without_config() {
        let dir = tempfile::tempdir().unwrap();
        assert!(error_of(dir.path()).contains("no `config.json`"));
    }

    #[test]
    fn unsupported_architecture_is_named() {
        let dir = copy_fixture("qwen2_tied");
        let path = dir.path().join("config.json");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("Qwen2ForCausalLM", "GPTNeoXForCausalLM");
        std::fs::write(&path, text).unwrap();
        let msg = error_of(dir.path());
        assert!(
            msg.contains("GPTNeoXForCausalLM") && msg.contains("LlamaForCausalLM"),
            "{msg}"
        );
    }

    #[test]
    fn missing_shard() {
        let dir = copy_fixture("mistral_sharded");
        std::fs::remove_file(dir.path().join("model-00002-of-00003.safetensors")).unwrap();
        let msg = error_of(dir.path());
        assert!(
            msg.contains("model-00002-of-00003.safetensors") && msg.contains("missing"),
            "{msg}"
        );
    }

    #[test]
    fn truncated_safetensors() {
        let dir = copy_fixture("qwen2_tied");
        let path = dir.path().join("model.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let msg = error_of(dir.path());
        assert!(
            msg.contains("model.safetensors") && msg.contains("corrupt or truncated"),
            "{msg}"
        );
    }

    #[test]
    fn vocab_larger_than_embedding() {
        let dir = copy_fixture("llama3_rope");
        let path = dir.path().join("tokenizer.json");
        let mut tok: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
        for i in 0..100 {
            vocab.insert(format!("extra{i}"), Value::from(400 + i));
        }
        std::fs::write(&path, tok.to_string()).unwrap();
        let msg = error_of(dir.path());
        assert!(msg.contains("embedding has only 320 rows"), "{msg}");
    }

    #[test]
    fn missing_tensor_is_named() {
        let dir = copy_fixture("llama3_rope");
        let path = dir.path().join("config.json");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
        std::fs::write(&path, text).unwrap();
        let msg = error_of(dir.path());
        assert!(msg.contains("model.layers.2."), "{msg}");
    }
}

#[test]
fn a_cancelled_generation_ends_at_the_next_token_with_what_it_has() {
    let backbone = load("llama3_rope");
    let exp = expected_text("llama3_rope");
    let prompt = ids_of(&exp["generation"]["prompt_ids"]);
    let greedy = ids_of(&exp["generation"]["greedy_ids"]);
    let cfg = GenerationConfig {
        max_new_tokens: 12,
        ..GenerationConfig::default()
    };
    let asked = std::cell::Cell::new(0);
    let out = ferrotune_model::generate_until(
        &backbone.model,
        &backbone.tokenizer,
        &prompt,
        &cfg,
        &mut |_| {},
        &|| {
            asked.set(asked.get() + 1);
            asked.get() > 3
        },
    )
    .unwrap();
    assert_eq!(out.finish_reason, ferrotune_model::FinishReason::Cancelled);
    assert_eq!(
        out.token_ids,
        greedy[..3],
        "the greedy tokens before the cancel"
    );
}

#[test]
fn r20_a_request_past_the_context_is_capped_there() {
    // `--max-new-tokens 1000000000` on a 256-token model: it stops at the context, saying so.
    let backbone = load("llama3_rope");
    let exp = expected_text("llama3_rope");
    let prompt = ids_of(&exp["generation"]["prompt_ids"]);
    let cfg = GenerationConfig {
        max_new_tokens: 1_000_000_000,
        stop_token_ids: Vec::new(),
        ..GenerationConfig::default()
    };
    let out = ferrotune_model::generate(
        &backbone.model,
        &backbone.tokenizer,
        &prompt,
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(out.finish_reason, ferrotune_model::FinishReason::Context);
    assert_eq!(out.token_ids.len(), 256 - prompt.len());
    let long = vec![prompt[0]; 256];
    let err = ferrotune_model::generate(
        &backbone.model,
        &backbone.tokenizer,
        &long,
        &cfg,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("256 tokens") && err.contains("context"),
        "{err}"
    );
}

#[test]
fn r20_a_config_vocab_size_other_than_the_embedding_rows_is_refused() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama3_rope");
    for delta in [1i64, -1] {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        let cfg_path = dir.path().join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
        let rows = cfg["vocab_size"].as_i64().unwrap();
        cfg["vocab_size"] = serde_json::json!(rows + delta);
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let err = match Backbone::load_folder(dir.path(), DType::F32, &Device::Cpu) {
            Ok(_) => panic!("vocab_size {} was accepted", rows + delta),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&format!("vocab_size: {}", rows + delta))
                && err.contains(&format!("{rows} rows")),
            "{err}"
        );
    }
}
