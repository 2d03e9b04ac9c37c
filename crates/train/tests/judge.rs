//! The GPT judge against a stub OpenAI-compatible server in the test (fixed replies: a good verdict, garbage, a
//! slow reply, HTTP 500, 401, and one that fails once then answers): scores parsed, retries and timeouts as set,
//! failed rows counted and never scored 0.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrotune_config::GptTemplate;
use ferrotune_train::judge::{Answer, Judge, JudgeSettings, Verdict};

use crate::common::{experiment, train};

/// A stub server: the reply depends on the word the answer under judgement holds; counts requests per word.
fn stub() -> (String, Arc<Mutex<HashMap<String, usize>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let seen = counts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                let mut auth = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("authorization:") {
                        auth = line["authorization:".len()..].trim().to_string();
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let body = String::from_utf8_lossy(&body).to_string();
                let word = ["GOOD", "GARBAGE", "SLOW", "FAIL500", "FLAKY", "DENIED"]
                    .into_iter()
                    .find(|w| body.contains(w))
                    .unwrap_or("GOOD");
                if body.contains("start of the reference answer") {
                    *seen
                        .lock()
                        .unwrap()
                        .entry("REFERENCE".to_string())
                        .or_insert(0) += 1;
                }
                let n = {
                    let mut c = seen.lock().unwrap();
                    let n = c.entry(word.to_string()).or_insert(0);
                    *n += 1;
                    *n
                };
                let reply = |content: &str| {
                    serde_json::json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})
                        .to_string()
                };
                let (status, text) = match word {
                    "GOOD" if auth == "Bearer wrong" => {
                        (401, r#"{"error": {"message": "bad key"}}"#.to_string())
                    }
                    "GOOD" if body.contains("scale of 1 to 10") => {
                        (200, reply("Helpful.\nSCORE: 7"))
                    }
                    "GOOD" => (200, reply("Correct and clear.\nSCORE: 0.75")),
                    "GARBAGE" => (200, reply("What a lovely answer!")),
                    "SLOW" => {
                        std::thread::sleep(Duration::from_secs(3));
                        (200, reply("SCORE: 1"))
                    }
                    "FAIL500" => (500, r#"{"error": {"message": "overloaded"}}"#.to_string()),
                    "FLAKY" if n == 1 => (503, "busy".to_string()),
                    "FLAKY" => (200, reply("Fine.\nSCORE: 0.25")),
                    _ => (401, r#"{"error": {"message": "bad key"}}"#.to_string()),
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            });
        }
    });
    (base, counts)
}

fn settings(base: &str, key: Option<&str>) -> JudgeSettings {
    JudgeSettings {
        api_base: base.to_string(),
        api_key: key.map(String::from),
        model: "judge".into(),
        template: GptTemplate::General,
        attempts: 3,
        timeout: Duration::from_secs(1),
        max_rows: 100,
    }
}

fn answer(prediction: &str) -> Answer<'_> {
    Answer {
        prompt: "What is 2 + 2?",
        reference: "4",
        prediction,
        category: None,
    }
}

#[test]
fn good_garbage_slow_failing_and_flaky_replies_are_scored_retried_and_counted() {
    let (base, counts) = stub();
    let judge = Judge::new(settings(&base, Some("sk-test")));
    let started = Instant::now();
    let judged = judge
        .judge_all(&[
            answer("GOOD"),
            answer("GARBAGE"),
            answer("SLOW"),
            answer("FAIL500"),
            answer("FLAKY"),
        ])
        .unwrap();
    let v = &judged.verdicts;
    assert_eq!(
        v[0],
        Verdict::Scored {
            score: 0.75,
            explanation: "Correct and clear.".into()
        }
    );
    assert!(
        matches!(&v[1], Verdict::Failed(w) if w.contains("no `SCORE:` line")),
        "{:?}",
        v[1]
    );
    assert!(
        matches!(&v[2], Verdict::Failed(w) if w.to_lowercase().contains("timeout") || w.contains("timed out")),
        "{:?}",
        v[2]
    );
    assert!(
        matches!(&v[3], Verdict::Failed(w) if w.contains("HTTP 500") && w.contains("overloaded")),
        "{:?}",
        v[3]
    );
    assert!(
        matches!(v[4], Verdict::Scored { score, .. } if score == 0.25),
        "{:?}",
        v[4]
    );
    // The mean is over the scored answers only; the failures are counted, not scored 0.
    assert_eq!((judged.mean, judged.failed), (0.5, 3));
    let note = judged.failure_note().unwrap();
    assert!(note.contains("could not score 3 of 5 answers"), "{note}");
    let c = counts.lock().unwrap();
    assert_eq!(
        c["GARBAGE"], 3,
        "garbage is asked again up to LLM_RETRY_ATTEMPTS"
    );
    assert_eq!(c["SLOW"], 3, "a timeout is retried");
    assert_eq!(c["FAIL500"], 3, "a 500 is retried");
    assert_eq!(c["FLAKY"], 2, "a 503 then an answer");
    // Slow tries end at LLM_TIMEOUT (1 s), not at the stub's 3 s, and run in parallel with the others.
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_refused_key_is_not_retried_and_a_judge_that_scores_nothing_is_a_clear_error() {
    let (base, counts) = stub();
    let judge = Judge::new(settings(&base, Some("wrong")));
    let err = judge
        .judge_all(&[answer("GOOD"), answer("DENIED")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("scored none of the 2 validation answers"),
        "{err}"
    );
    assert!(err.contains("HTTP 401") && err.contains("bad key"), "{err}");
    assert!(err.contains("OPENAI_API_KEY"), "{err}");
    let c = counts.lock().unwrap();
    assert_eq!((c["GOOD"], c["DENIED"]), (1, 1), "401 is not retried");
    // Nobody listening: the connection failure is the reason.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Judge::new(settings(&format!("http://127.0.0.1:{port}/v1"), None))
        .judge_all(&[answer("x")])
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn a_run_with_the_gpt_metric_is_judged_at_each_evaluation_and_writes_the_verdicts() {
    let (base, counts) = stub();
    let dir = tempfile::tempdir().unwrap();
    let cfg = experiment(
        dir.path(),
        "judged",
        &[
            ("prediction.metric", "GPT"),
            ("prediction.metric_gpt_model", "judge"),
            ("prediction.metric_gpt_api_base", &base),
            ("prediction.max_length_inference", "4"),
            ("training.evaluation_epochs", "0.5"),
        ],
    );
    let ran = train(&cfg, false, None);
    assert_eq!(ran.summary.status.name(), "finished");
    assert_eq!(ran.summary.metric_name, "GPT");
    assert_eq!(ran.summary.metric, Some(0.75));
    let logs = ran.logs().join("\n");
    assert!(
        logs.contains(&format!("GPT judge: `judge` at {base}")),
        "{logs}"
    );
    // Every evaluation judged every validation answer (3 rows, 2 evaluations and the start).
    let evaluations = ran
        .events
        .iter()
        .filter(|e| matches!(e, ferrotune_train::events::Event::Evaluation { .. }))
        .count();
    assert_eq!(counts.lock().unwrap()["GOOD"], 3 * evaluations);
    let csv = std::fs::read_to_string(ferrotune_home::RunDir::new(cfg.output_dir()).predictions())
        .unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(header, "prompt,target,prediction,GPT,explanation");
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.contains(",0.75,\"Correct and clear.\"")),
        "{csv}"
    );
}

/// H2O's saved experiment `name` with its judge endpoint (what OPENAI_API_BASE says for H2O) at `base`, and
/// answers of 8 tokens.
fn judged_h2o(
    name: &str,
    data: &std::path::Path,
    dir: &std::path::Path,
    base: &str,
) -> ferrotune_config::Experiment {
    let text = ferrotune_test_support::h2o_experiment(name, data, &dir.join("h2o"))
        .replace(
            "    metric_gpt_template: general\n",
            &format!("    metric_gpt_template: general\n    metric_gpt_api_base: {base}\n"),
        )
        .replace(
            "    max_length_inference: 256\n",
            "    max_length_inference: 8\n",
        );
    ferrotune_config::Experiment::from_yaml_str(&text, name).unwrap()
}

#[test]
fn an_h2o_llm_studio_causal_file_trains_as_it_is_judged_by_its_gpt_metric() {
    // H2O 1.14's saved causal-LM experiment (crates/config/tests/fixtures/h2o) with the backbone, the data and the
    // output folder pointed at local places, and its judge endpoint (what OPENAI_API_BASE says for H2O) at the stub.
    let (base, counts) = stub();
    let dir = tempfile::tempdir().unwrap();
    let data = ferrotune_test_support::write_arithmetic_data(dir.path(), "data.json", 48);
    let cfg = judged_h2o("causal_lm", &data, dir.path(), &base);
    assert_eq!(cfg.prediction.metric_gpt_model, "gpt-3.5-turbo-0301");
    let ran = train(&cfg, false, None);
    assert_eq!(ran.summary.status.name(), "finished");
    assert_eq!(
        (ran.summary.metric_name, ran.summary.metric),
        ("GPT", Some(0.75))
    );
    assert!(counts.lock().unwrap()["GOOD"] >= 1);
}

#[test]
fn an_h2o_llm_studio_dpo_file_trains_as_it_is_judged_by_its_gpt_metric() {
    let (base, _) = stub();
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<serde_json::Value> = (0..40)
        .map(|i| {
            serde_json::json!({
                "system": "Answer with a number.",
                "question": format!("Add {} and {}.", i, 2 * i),
                "chosen": format!("{}", 3 * i),
                "rejected": format!("{} or so", 3 * i + 7),
            })
        })
        .collect();
    let data = ferrotune_test_support::write_file(
        dir.path(),
        "pairs.json",
        serde_json::to_string(&rows).unwrap(),
    );
    let cfg = judged_h2o("dpo", &data, dir.path(), &base);
    assert_eq!(cfg.problem_type.as_str(), "text_dpo_modeling");
    let ran = train(&cfg, false, None);
    assert_eq!(ran.summary.status.name(), "finished");
    assert_eq!(
        (ran.summary.metric_name, ran.summary.metric),
        ("GPT", Some(0.75))
    );
}

#[test]
fn the_mt_bench_template_grades_math_reasoning_and_coding_rows_against_their_reference() {
    let (base, counts) = stub();
    let dir = tempfile::tempdir().unwrap();
    // A custom validation file: two math rows and two writing rows.
    let rows = |n: usize| -> String {
        let rows: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                serde_json::json!({
                    "instruction": format!("Add {i} and {i}."), "input": "", "output": format!("{}", 2 * i),
                    "category": if i % 2 == 0 { "math" } else { "writing" },
                })
            })
            .collect();
        serde_json::to_string(&rows).unwrap()
    };
    let train_file = ferrotune_test_support::write_file(dir.path(), "train.json", rows(16));
    let validation = ferrotune_test_support::write_file(dir.path(), "validation.json", rows(4));
    let cfg = crate::common::experiment_on(
        dir.path(),
        "mtbench",
        &train_file,
        &[
            ("prediction.metric", "GPT"),
            ("prediction.metric_gpt_template", "mt-bench"),
            ("prediction.metric_gpt_api_base", &base),
            ("prediction.max_length_inference", "4"),
            ("dataset.validation_strategy", "custom"),
            (
                "dataset.validation_dataframe",
                &validation.display().to_string(),
            ),
        ],
    );
    let ran = train(&cfg, false, None);
    assert_eq!(
        (ran.summary.metric_name, ran.summary.metric),
        ("GPT", Some(7.0))
    );
    let c = counts.lock().unwrap();
    // Half of the judged answers (the math rows) carried their reference.
    assert_eq!(c["REFERENCE"] * 2, c["GOOD"], "{c:?}");
}
