//! What one experiment's routes serve from the files its run left (a real tiny run, see `common::trained`):
//! metrics, logs, predictions, the first batch, the downloads (the adapter as a zip) and the live stream.

use std::io::Read;

use axum::http::{header, StatusCode};
use ferrotune_test_support::{read_json, read_jsonl};

use crate::common::{trained, Studio, STOPPED_AT};

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn metrics_logs_predictions_and_first_batch_come_from_the_run_files() {
    let s = Studio::new(None);
    let dir = s.place(&trained().finished, "tiny");

    let (status, body) = s.get("/api/experiments/tiny").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let info = json(&body);
    assert_eq!(info["status"], "finished");
    let steps = read_jsonl(&dir.join("metrics.jsonl"))
        .iter()
        .filter(|e| e["event"] == "step")
        .count();
    assert_eq!(info["step"], steps);
    assert_eq!(info["total_steps"], steps);
    assert_eq!(info["metric_name"], "Perplexity");
    assert!(
        info["summary"]["tokens_per_second"].as_f64().unwrap() > 0.0,
        "{info}"
    );

    let (status, body) = s.get("/api/experiments/tiny/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json(&body),
        serde_json::Value::from(read_jsonl(&dir.join("metrics.jsonl")))
    );

    // Logs: the last 500 lines by default, or `tail` of them.
    let log_lines: Vec<String> = std::fs::read_to_string(dir.join("logs.log"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert!(log_lines.len() > 3 && log_lines.len() < 500);
    let (status, body) = s.get("/api/experiments/tiny/logs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body), serde_json::json!(log_lines));
    let (_, body) = s.get("/api/experiments/tiny/logs?tail=3").await;
    assert_eq!(
        json(&body),
        serde_json::json!(log_lines[log_lines.len() - 3..])
    );

    let (status, body) = s.get("/api/experiments/tiny/predictions").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let predictions = json(&body);
    assert_eq!(
        predictions["columns"],
        serde_json::json!(["prompt", "target", "prediction", "Perplexity"])
    );
    let rows = predictions["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert_eq!(
        rows.len(),
        ferrotune_data::read_table(&dir.join("validation_predictions.csv"))
            .unwrap()
            .len(),
        "one row per validation prompt"
    );
    for row in rows {
        assert!(row[0].as_str().unwrap().contains("Add "), "{row}");
        assert!(
            row[3].as_str().unwrap().parse::<f64>().unwrap().is_finite(),
            "{row}"
        );
    }

    let (status, body) = s.get("/api/experiments/tiny/first-batch").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body), read_json(&dir.join("first_batch.json")));
    assert_eq!(
        json(&body)["rows"].as_array().unwrap().len(),
        4,
        "batch_size 4"
    );

    // An unknown experiment is a 404 with the JSON error.
    let (status, body) = s.get("/api/experiments/nope/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("no experiment named `nope`"),
        "{body}"
    );
}

#[tokio::test]
async fn downloads_send_the_config_logs_predictions_and_the_adapter_as_a_zip() {
    let s = Studio::new(None);
    let dir = s.place(&trained().finished, "tiny");
    let attachment = |headers: &axum::http::HeaderMap| {
        headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .to_string()
    };

    let (status, headers, body) = s.get_bytes("/api/experiments/tiny/download/config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/yaml; charset=utf-8");
    assert_eq!(attachment(&headers), "attachment; filename=\"tiny.yaml\"");
    let cfg = ferrotune_config::Experiment::from_yaml_str(
        std::str::from_utf8(&body).unwrap(),
        "download",
    )
    .unwrap();
    assert_eq!(cfg.experiment_name, "tiny");
    assert_eq!(cfg.training.evaluation_epochs, 0.5);

    let (status, headers, body) = s.get_bytes("/api/experiments/tiny/download/logs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    assert_eq!(
        attachment(&headers),
        "attachment; filename=\"tiny-logs.log\""
    );
    assert_eq!(body, std::fs::read(dir.join("logs.log")).unwrap());

    let (status, headers, body) = s
        .get_bytes("/api/experiments/tiny/download/predictions")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        attachment(&headers),
        "attachment; filename=\"tiny-validation_predictions.csv\""
    );
    assert_eq!(
        body,
        std::fs::read(dir.join("validation_predictions.csv")).unwrap()
    );

    let (status, headers, body) = s.get_bytes("/api/experiments/tiny/download/adapter").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/zip");
    assert_eq!(
        attachment(&headers),
        "attachment; filename=\"tiny-adapter.zip\""
    );
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(body.to_vec())).unwrap();
    let mut names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "adapter/adapter_config.json",
            "adapter/adapter_model.safetensors"
        ]
    );
    let mut config = String::new();
    zip.by_name("adapter/adapter_config.json")
        .unwrap()
        .read_to_string(&mut config)
        .unwrap();
    assert_eq!(
        config,
        std::fs::read_to_string(dir.join("adapter/adapter_config.json")).unwrap()
    );
    assert_eq!(json(&config)["peft_type"], "LORA");
    let mut weights = Vec::new();
    zip.by_name("adapter/adapter_model.safetensors")
        .unwrap()
        .read_to_end(&mut weights)
        .unwrap();
    assert_eq!(
        weights,
        std::fs::read(dir.join("adapter/adapter_model.safetensors")).unwrap()
    );

    let (status, body) = s.get("/api/experiments/tiny/download/weights").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        json(&body)["error"].as_str().unwrap().contains(
            "no download `weights`\nhelp: the downloads are config, logs, predictions, adapter"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn a_stopped_run_has_its_first_batch_but_no_predictions_or_adapter_yet() {
    let s = Studio::new(None);
    s.place(&trained().stopped, "paused");
    let (_, body) = s.get("/api/experiments/paused").await;
    assert_eq!(json(&body)["status"], "stopped");
    assert_eq!(json(&body)["step"], STOPPED_AT);
    let (status, _) = s.get("/api/experiments/paused/first-batch").await;
    assert_eq!(status, StatusCode::OK);
    for (uri, what) in [
        (
            "/api/experiments/paused/predictions",
            "no validation predictions yet",
        ),
        (
            "/api/experiments/paused/download/predictions",
            "no validation predictions yet",
        ),
        (
            "/api/experiments/paused/download/adapter",
            "no adapter yet (it is saved when training ends)",
        ),
    ] {
        let (status, body) = s.get(uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            json(&body)["error"].as_str().unwrap().contains(what),
            "{uri}: {body}"
        );
    }
}

#[tokio::test]
async fn the_experiment_stream_replays_its_status_metrics_and_logs() {
    let s = Studio::new(None);
    let dir = s.place(&trained().finished, "tiny");
    let metrics = read_jsonl(&dir.join("metrics.jsonl"));
    let logs: Vec<String> = std::fs::read_to_string(dir.join("logs.log"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let count =
        |events: &[(String, String)], kind: &str| events.iter().filter(|(e, _)| e == kind).count();
    let events = s
        .events_until("/api/experiments/tiny/events", |events| {
            count(events, "metric") >= metrics.len() && count(events, "log") >= logs.len()
        })
        .await;
    assert_eq!(events[0].0, "status", "{events:?}");
    let status = json(&events[0].1);
    assert_eq!(
        (status["name"].as_str(), status["status"].as_str()),
        (Some("tiny"), Some("finished"))
    );
    let replayed: Vec<serde_json::Value> = events
        .iter()
        .filter(|(e, _)| e == "metric")
        .map(|(_, d)| json(d))
        .collect();
    assert_eq!(replayed, metrics, "the history, in order");
    assert!(replayed.iter().any(|m| m["event"] == "evaluation"));
    let replayed_logs: Vec<String> = events
        .iter()
        .filter(|(e, _)| e == "log")
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(replayed_logs, logs);
    assert_eq!(
        count(&events, "status"),
        1,
        "the status did not change: {events:?}"
    );

    let (status, body) = s.get("/api/experiments/nope/events").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn exports_run_in_the_background_report_progress_and_download() {
    let s = Studio::new(None);
    let dir = s.place(&trained().finished, "tiny");
    let (status, body) = s
        .json(
            "POST",
            "/api/experiments/tiny/exports",
            serde_json::json!({"format": "gguf", "gguf_type": "q4_k_m"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["kind"], "gguf-q4_k_m");
    assert_eq!(body["state"], "running");
    // Poll the list until the job is done (it writes a few dozen tensors of the tiny model).
    let mut list = serde_json::Value::Null;
    for _ in 0..200 {
        let (status, text) = s.get("/api/experiments/tiny/exports").await;
        assert_eq!(status, StatusCode::OK);
        list = json(&text);
        if list["jobs"][0]["state"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let job = &list["jobs"][0];
    assert_eq!(job["state"], "finished", "{list}");
    assert!(
        job["done"].as_u64().unwrap() > 0 && job["done"] == job["total"],
        "{job}"
    );
    let on_disk = dir.join("exports/gguf-q4_k_m");
    assert_eq!(job["path"], on_disk.to_string_lossy().as_ref());
    assert_eq!(list["exports"][0]["kind"], "gguf-q4_k_m");
    let url = job["download"].as_str().unwrap();
    let (status, headers, bytes) = s.get_bytes(url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"tiny.q4_k_m.gguf\""
    );
    assert_eq!(
        bytes,
        std::fs::read(on_disk.join("tiny.q4_k_m.gguf")).unwrap()
    );
    // The experiment's stream carries the job's state.
    let events = s
        .events_until("/api/experiments/tiny/events", |e| {
            e.iter().any(|(n, _)| n == "export")
        })
        .await;
    let (_, data) = events.iter().find(|(n, _)| n == "export").unwrap();
    assert_eq!(json(data)[0]["state"], "finished");

    // The merged folder downloads as a zip; a second export of a kind replaces the first.
    for _ in 0..2 {
        let (status, _) = s
            .json(
                "POST",
                "/api/experiments/tiny/exports",
                serde_json::json!({"format": "hf"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        for _ in 0..200 {
            let (_, text) = s.get("/api/experiments/tiny/exports").await;
            let l = json(&text);
            if l["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|j| j["state"] != "running")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let (status, headers, bytes) = s
        .get_bytes("/api/experiments/tiny/exports/hf/download")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/zip");
    let zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert!(zip
        .file_names()
        .any(|n| n.is_ok_and(|n| n == "tiny-hf/model.safetensors")));
    let entries: Vec<String> = std::fs::read_dir(dir.join("exports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");

    // Bad requests name the field and its choices.
    let (status, body) = s
        .json(
            "POST",
            "/api/experiments/tiny/exports",
            serde_json::json!({"format": "onnx"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`format` is `onnx`; it is one of `hf`, `gguf`, `gguf-adapter`"),
        "{body}"
    );
    let (status, body) = s
        .get("/api/experiments/tiny/exports/gguf-q6_k/download")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}
