//! An experiment's life through the API, on real run folders (see `common::trained`): stop, resume and restart
//! follow its status and refuse the wrong one with 409; rename and delete move and remove its folder.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::{trained, Studio};

#[tokio::test]
async fn stop_resume_and_restart_follow_the_status_and_refuse_the_wrong_one() {
    let s = Studio::with_idle_runner();
    let done = s.place(&trained().finished, "done");
    s.place(&trained().stopped, "paused");

    // A finished run cannot be stopped or resumed.
    let (status, e) = s
        .json("POST", "/api/experiments/done/stop", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("experiment `done` is finished, so it cannot be stopped"),
        "{e}"
    );
    let (status, e) = s
        .json("POST", "/api/experiments/done/resume", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("restart done"),
        "the fix is named: {e}"
    );

    // A stopped run with a checkpoint is queued to continue from it, once.
    let (status, v) = s
        .json("POST", "/api/experiments/paused/resume", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["resume"].as_bool()),
        (Some("queued"), Some(true)),
        "{v}"
    );
    let (status, e) = s
        .json("POST", "/api/experiments/paused/resume", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    // Stopping it before it runs takes it out of the queue; its checkpoint stays.
    let (status, v) = s
        .json("POST", "/api/experiments/paused/stop", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["stopped"], "unqueued");
    assert_eq!(v["experiment"]["status"], "stopped");
    let (_, v) = s.json("GET", "/api/experiments/paused", json!({})).await;
    assert_eq!(v["status"], "stopped");
    assert!(s
        .dir
        .home()
        .experiments()
        .join("paused/checkpoint/state.json")
        .is_file());

    // Restart queues a fresh run: every output but cfg.yaml and the metrics are gone.
    let (status, v) = s
        .json("POST", "/api/experiments/done/restart", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["resume"].as_bool()),
        (Some("queued"), Some(false)),
        "{v}"
    );
    assert_eq!(
        (v["step"].as_u64(), v["progress"].as_f64()),
        (Some(0), Some(0.0)),
        "{v}"
    );
    let left: Vec<String> = std::fs::read_dir(&done)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["cfg.yaml"]);
    let (status, metrics) = s
        .json("GET", "/api/experiments/done/metrics", json!({}))
        .await;
    assert_eq!((status, metrics), (StatusCode::OK, json!([])));
    let (status, _) = s.get("/api/experiments/done/download/adapter").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A queued run cannot be restarted (stop it first).
    let (status, e) = s
        .json("POST", "/api/experiments/done/restart", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("stop it first"),
        "{e}"
    );

    // A run stopped without a checkpoint cannot be resumed.
    let (status, _) = s
        .json("POST", "/api/experiments/done/stop", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = s
        .json("POST", "/api/experiments/done/resume", json!({}))
        .await;
    assert!(status.is_client_error(), "{status}: {e}");
    assert!(
        e["error"].as_str().unwrap().contains("no checkpoint"),
        "{e}"
    );
    let (status, e) = s
        .json("POST", "/api/experiments/nope/stop", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
}

#[tokio::test]
async fn resume_and_restart_without_a_runner_change_nothing() {
    let s = Studio::new(None);
    let done = s.place(&trained().finished, "done");
    s.place(&trained().stopped, "paused");
    for uri in [
        "/api/experiments/paused/resume",
        "/api/experiments/done/restart",
    ] {
        let (status, e) = s.json("POST", uri, json!({})).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {e}");
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .contains("without the ferrotune binary"),
            "{e}"
        );
    }
    let (_, v) = s.json("GET", "/api/experiments/paused", json!({})).await;
    assert_eq!(
        v["status"], "stopped",
        "not queued where nothing can run it"
    );
    let (_, v) = s.json("GET", "/api/experiments/done", json!({})).await;
    assert_eq!(v["status"], "finished");
    assert!(
        done.join("adapter/adapter_config.json").is_file(),
        "its outputs are kept"
    );
}

#[tokio::test]
async fn rename_and_delete_move_and_remove_the_folder_and_refuse_clashes() {
    let s = Studio::new(None);
    let first = s.place(&trained().finished, "first");
    s.place(&trained().finished, "second");
    let (_, metrics_before) = s.get("/api/experiments/first/metrics").await;

    let (status, e) = s
        .json(
            "POST",
            "/api/experiments/first/rename",
            json!({"name": "second"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("an experiment named `second` already exists"),
        "{e}"
    );
    let (status, e) = s
        .json(
            "POST",
            "/api/experiments/first/rename",
            json!({"name": "../out"}),
        )
        .await;
    assert!(status.is_client_error(), "{status}: {e}");
    assert!(first.is_dir(), "nothing moved");

    let (status, v) = s
        .json(
            "POST",
            "/api/experiments/first/rename",
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["status"].as_str()),
        (Some("renamed"), Some("finished"))
    );
    let renamed = s.dir.home().experiments().join("renamed");
    assert!(!first.exists() && renamed.join("adapter/adapter_model.safetensors").is_file());
    let (status, _) = s.get("/api/experiments/first").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, metrics_after) = s.get("/api/experiments/renamed/metrics").await;
    assert_eq!(metrics_after, metrics_before, "the metrics moved with it");
    let (_, config) = s.get("/api/experiments/renamed/config").await;
    let cfg = ferrotune_config::Experiment::from_yaml_str(&config, "config").unwrap();
    assert_eq!(cfg.experiment_name, "renamed");
    assert_eq!(cfg.output_directory, renamed.display().to_string());

    let (status, _, body) = s
        .send(
            axum::http::Request::delete("/api/experiments/renamed")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
    assert!(!renamed.exists());
    let (status, _) = s.get("/api/experiments/renamed").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = s.json("GET", "/api/experiments", json!({})).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["second"]);
    let (status, _, _) = s
        .send(
            axum::http::Request::delete("/api/experiments/renamed")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_predict_panel_applies_the_run_to_an_upload_and_offers_the_csv() {
    let s = Studio::with_idle_runner();
    s.place(&trained().finished, "done");
    // The run trained on a registered dataset: its prompt column is the canonical `prompt`.
    let (status, up) = s
        .upload("new.csv", "prompt\nAdd 2 and 4.\nAdd 5 and 10.\n")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let upload: serde_json::Value = serde_json::from_str(&up).unwrap();
    let (status, v) = s
        .json(
            "POST",
            "/api/experiments/done/predict",
            json!({"upload": upload["upload"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v} {}", s.log());
    assert_eq!(v["rows"], 2, "{v}");
    assert_eq!(v["file"], "new.predictions.csv");
    let (status, csv) = s.get(v["download"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        csv.starts_with("prompt,prediction\n") && csv.lines().count() == 3,
        "{csv}"
    );
    // The staged upload is used up; a name that is not a predictions file is refused.
    let (status, _) = s
        .json(
            "POST",
            "/api/experiments/done/predict",
            json!({"upload": upload["upload"]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.get("/api/experiments/done/predict/..%2Fcfg.yaml").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // An upload without the prompt column names it.
    let (_, up) = s.upload("bad.csv", "question\nhi\n").await;
    let upload: serde_json::Value = serde_json::from_str(&up).unwrap();
    let (status, e) = s
        .json(
            "POST",
            "/api/experiments/done/predict",
            json!({"upload": upload["upload"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("no column `prompt`"),
        "{e}"
    );
}

/// A finished classification run on the tiny backbone (its last word decides the label).
fn classifier(root: &std::path::Path) -> std::path::PathBuf {
    let mut rows = String::from("instruction,input,label\n");
    for i in 0..24 {
        let (word, label) = if i % 2 == 0 {
            ("plum", "sweet")
        } else {
            ("brick", "plain")
        };
        rows.push_str(&format!("Item {i} is a {word},,{label}\n"));
    }
    let data = ferrotune_test_support::write_file(root, "labels.csv", rows);
    let yaml = ferrotune_test_support::experiment_yaml("classifier", root, &data);
    let mut cfg = ferrotune_config::Experiment::from_yaml_str(&yaml, "classifier").unwrap();
    cfg.set(
        "problem_type",
        &"text_causal_classification_modeling".into(),
    )
    .unwrap();
    cfg.training.epochs = 3;
    cfg.training.learning_rate = 0.003;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let home = ferrotune_home::Home::new(root.join("home"));
    let request = ferrotune_train::run::RunRequest {
        config: &cfg,
        home: &home,
        resume: false,
        stop: &stop,
    };
    let summary =
        ferrotune_train::run::run(request, &mut |_: &ferrotune_train::events::Event| {}).unwrap();
    assert_eq!(summary.status.name(), "finished");
    cfg.output_dir()
}

#[tokio::test]
async fn the_score_box_applies_a_classifier_to_typed_text() {
    let root = tempfile::tempdir().unwrap();
    let s = Studio::with_idle_runner();
    s.place(&classifier(root.path()), "classifier");
    s.place(&trained().finished, "done");
    let (status, page) = s.get("/experiments/classifier").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("id=\"score-box\""),
        "the classifier's page has the box"
    );
    let (_, page) = s.get("/experiments/done").await;
    assert!(
        !page.contains("id=\"score-box\""),
        "a causal-LM run has none"
    );

    let (status, v) = s
        .json(
            "POST",
            "/api/experiments/classifier/score",
            json!({"text": "Item 77 is a plum"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v} {}", s.log());
    assert_eq!(v["prediction"], "sweet", "{v}");
    assert_eq!(v["outputs"][0][0], "probability_sweet", "{v}");
    assert!(v["outputs"][0][1].as_f64().unwrap() > 0.5, "{v}");
    let (_, v) = s
        .json(
            "POST",
            "/api/experiments/classifier/score",
            json!({"text": "Item 78 is a brick"}),
        )
        .await;
    assert_eq!(v["prediction"], "plain", "{v}");
    let (status, e) = s
        .json("POST", "/api/experiments/done/score", json!({"text": "hi"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("chat with it instead"),
        "{e}"
    );
}
