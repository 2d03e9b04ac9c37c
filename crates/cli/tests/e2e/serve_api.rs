//! `ferrotune serve --model PATH --adapter NAME=DIR`: the OpenAI-compatible API over a real socket with a real
//! HTTP client — the model list, adapter switching per request, concurrent requests answered (batched) exactly
//! as one at a time, streaming, and a client that goes away mid-stream.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use ferrotune_model::adapter::{attach_random_lora, save_peft};
use ferrotune_model::lora::LoraSpec;
use ferrotune_model::{Backbone, DType, Device};
use serde_json::{json, Value};

use super::{ferrotune, fixture};

/// A PEFT adapter with non-zero weights (seeded) for the fixture, in `dir/name`.
fn write_adapter(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let mut backbone =
        Backbone::load_folder(&fixture("llama3_rope"), DType::F32, &Device::Cpu).unwrap();
    let spec = LoraSpec::every_module(4, 8.0);
    attach_random_lora(&mut backbone.model, &spec, seed, 0.05).unwrap();
    let out = dir.join(name);
    save_peft(&backbone.model, &spec, "llama3_rope", &out).unwrap();
    out
}

/// The server process (killed when dropped) and its address.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(home: &Path, adapters: &[(&str, &Path)]) -> Server {
    let mut cmd = ferrotune();
    cmd.env("FERROTUNE_HOME", home)
        .args(["serve", "--port", "0", "--max-batch", "8", "--model"])
        .arg(fixture("llama3_rope"));
    for (name, dir) in adapters {
        cmd.arg("--adapter")
            .arg(format!("{name}={}", dir.display()));
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    assert!(line.contains("OpenAI-compatible API listening"), "{line}");
    Server {
        child,
        base: format!("http://{addr}/v1"),
    }
}

fn post(server: &Server, path: &str, body: &Value) -> Value {
    let mut response = ureq::post(&format!("{}{path}", server.base))
        .content_type("application/json")
        .send(body.to_string())
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

fn completion(server: &Server, model: &str, prompt: &str) -> String {
    let body = json!({"model": model, "prompt": prompt, "max_tokens": 10, "temperature": 0});
    let answer = post(server, "/completions", &body);
    answer["choices"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_string()
}

#[test]
fn the_api_serves_adapters_by_name_and_concurrent_requests_answer_as_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_adapter(dir.path(), "a", 1);
    let b = write_adapter(dir.path(), "b", 2);
    let server = start(
        &dir.path().join("home"),
        &[("support-a", &a), ("support-b", &b)],
    );
    let mut models = ureq::get(&format!("{}/models", server.base))
        .call()
        .unwrap();
    let models: Value = serde_json::from_str(&models.body_mut().read_to_string().unwrap()).unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["llama3_rope", "support-a", "support-b"]);
    let jobs: Vec<(&str, &str)> = vec![
        ("llama3_rope", "one two three"),
        ("support-a", "one two three"),
        ("support-b", "one two three"),
        ("support-a", "a longer prompt with more words in it"),
        ("support-b", "hello"),
        ("llama3_rope", "hello there"),
    ];
    let alone: Vec<String> = jobs
        .iter()
        .map(|(m, p)| completion(&server, m, p))
        .collect();
    // Each adapter changes the answer (the adapters are live, not ignored).
    assert_ne!(alone[0], alone[1]);
    assert_ne!(alone[1], alone[2]);
    let together: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(m, p)| {
                let server = &server;
                scope.spawn(move || completion(server, m, p))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        together, alone,
        "batched greedy answers equal unbatched ones"
    );
}

#[test]
fn a_stream_delivers_the_answer_in_chunks_and_a_client_may_leave_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_adapter(dir.path(), "a", 3);
    let server = start(&dir.path().join("home"), &[("bot", &a)]);
    let body = json!({"model": "bot", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 12, "temperature": 0});
    let whole = post(&server, "/chat/completions", &body);
    let text = whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let response = ureq::post(&format!("{}/chat/completions", server.base))
        .content_type("application/json")
        .send(streamed.to_string())
        .unwrap();
    let reader = BufReader::new(response.into_body().into_reader());
    let mut pieces = String::new();
    let mut done = false;
    for line in reader.lines() {
        let line = line.unwrap();
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            done = true;
            break;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if let Some(p) = chunk["choices"][0]["delta"]["content"].as_str() {
            pieces.push_str(p);
        }
    }
    assert!(done);
    assert_eq!(pieces, text);
    // A long stream read for one chunk, then dropped: the server goes on answering others.
    let mut long = streamed.clone();
    long["max_tokens"] = json!(400);
    let response = ureq::post(&format!("{}/chat/completions", server.base))
        .content_type("application/json")
        .send(long.to_string())
        .unwrap();
    let mut reader = BufReader::new(response.into_body().into_reader());
    let mut first = String::new();
    while !first.starts_with("data: ") {
        first.clear();
        reader.read_line(&mut first).unwrap();
    }
    drop(reader);
    let again = post(&server, "/chat/completions", &body);
    assert_eq!(
        again["choices"][0]["message"]["content"].as_str(),
        Some(text.as_str())
    );
}

#[test]
fn a_run_judged_by_ferrotune_serve_reaches_it_and_a_judge_that_cannot_score_fails_the_run_clearly()
{
    // The judge is the tiny fixture served on loopback, whose 256-token context cannot hold the judge's prompt:
    // ferrotune serve's 400 (`context_length_exceeded`) reaches the run as the reason no answer was scored.
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("home"), &[]);
    let rows: Vec<Value> = (0..20)
        .map(|i| json!({"instruction": format!("Add {i} and {i}."), "input": "", "output": format!("{}", 2 * i)}))
        .collect();
    std::fs::write(
        dir.path().join("data.json"),
        serde_json::to_string(&rows).unwrap(),
    )
    .unwrap();
    let cfg = dir.path().join("judged.yaml");
    std::fs::write(
        &cfg,
        format!(
            "llm_backbone: {}\noutput_directory: {}/{{experiment_name}}\nexperiment_name: judged\n\
             dataset:\n  train_dataframe: {}\n  system_column: None\n  validation_size: 0.1\n\
             prediction:\n  metric: GPT\n  metric_gpt_model: llama3_rope\n  metric_gpt_api_base: {}\n  max_length_inference: 4\n",
            fixture("llama3_rope").display(),
            dir.path().display(),
            dir.path().join("data.json").display(),
            server.base
        ),
    )
    .unwrap();
    let out = ferrotune()
        .env("FERROTUNE_HOME", dir.path().join("home"))
        .args(["train", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the GPT judge (`llama3_rope` at ")
            && err.contains("scored none of the 2 validation answers"),
        "{err}"
    );
    assert!(
        err.contains("HTTP 400") && err.contains("the model's context holds 256 tokens"),
        "{err}"
    );
    let status: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("judged/status.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(status["status"], "failed");
}
