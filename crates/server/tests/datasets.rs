//! Uploads, previews, imports, remapping and deletes; nothing reaches outside the home.

use axum::http::StatusCode;

use crate::common::Studio;

#[tokio::test]
async fn names_and_uploads_cannot_reach_outside_the_home() {
    let s = Studio::new(None);
    let outside = s.dir.path().join("secret.json");
    std::fs::write(&outside, "[]").unwrap();
    // A dataset name with a path in it is refused before anything touches the disk.
    let (status, body) = s
        .json(
            "POST",
            "/api/datasets",
            serde_json::json!({"name": "../escape", "path": outside}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("invalid dataset name"));
    assert!(!s.dir.path().join("escape").exists());
    // An upload id is a hex token, never a path.
    let (status, body) = s
        .json(
            "POST",
            "/api/datasets/preview",
            serde_json::json!({"upload": "../../secret.json"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Encoded traversal in a URL segment names no dataset.
    let (status, _) = s.get("/api/datasets/..%2F..%2Fsecret").await;
    assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND);
    let (status, _) = s
        .json("DELETE", "/api/experiments/..%2Fx", serde_json::json!({}))
        .await;
    assert!(status.is_client_error());
    // An uploaded file keeps only its last name component, inside uploads/<id>/.
    let (status, text) = s
        .upload("../../evil.json", r#"[{"prompt": "p", "answer": "a"}]"#)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let up: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(up["file"], "evil.json");
    let placed = s
        .dir
        .path()
        .join("home/uploads")
        .join(up["upload"].as_str().unwrap())
        .join("evil.json");
    assert!(placed.is_file());
    assert!(!s.dir.path().join("evil.json").exists());
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_and_removed() {
    let s = Studio::new(None);
    let (status, saved) = s
        .json(
            "PUT",
            "/api/settings",
            serde_json::json!({"max_upload_mb": 1, "max_epochs": 100, "experiment_defaults": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let (status, text) = s.upload("big.csv", &"x".repeat(1_200_000)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("upload limit of 1 MiB"));
    let left = std::fs::read_dir(s.dir.path().join("home/uploads"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "the partial upload is removed");
}

#[tokio::test]
async fn upload_preview_import_remap_and_delete() {
    let s = Studio::new(None);
    let file = s.dir.path().join("qa.csv");
    std::fs::write(
        &file,
        "question,reply,sys\nWhat is 2+2?,4,Be brief.\nCapital of France?,Paris,Be brief.\n",
    )
    .unwrap();
    let (status, preview) = s
        .json(
            "POST",
            "/api/datasets/preview",
            serde_json::json!({"path": file}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        preview["columns"],
        serde_json::json!(["question", "reply", "sys"])
    );
    assert_eq!(preview["total_rows"], 2);
    assert_eq!(preview["guess"]["prompt"], serde_json::json!(["question"]));
    let (status, info) = s
        .json(
            "POST",
            "/api/datasets",
            serde_json::json!({"name": "qa", "path": file, "mapping": {"prompt": ["question"], "answer": "reply"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    assert_eq!(info["train"]["rows"], 2);
    let (_, rows) = s.get("/api/datasets/qa/rows").await;
    let rows: serde_json::Value = serde_json::from_str(&rows).unwrap();
    assert_eq!(rows[0]["system"], "");
    let (status, info) = s
        .json(
            "PUT",
            "/api/datasets/qa/mapping",
            serde_json::json!({"prompt": ["question"], "answer": "reply", "system": "sys"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{info}");
    let (_, rows) = s.get("/api/datasets/qa/rows").await;
    let rows: serde_json::Value = serde_json::from_str(&rows).unwrap();
    assert_eq!(rows[0]["system"], "Be brief.");
    // A mapping that does not fit leaves the dataset as it was.
    let (status, err) = s
        .json(
            "PUT",
            "/api/datasets/qa/mapping",
            serde_json::json!({"prompt": ["nope"], "answer": "reply"}),
        )
        .await;
    assert!(status.is_client_error(), "{err}");
    assert!(err["error"].as_str().unwrap().contains("nope"), "{err}");
    let (_, list) = s.get("/api/datasets").await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "no trial dataset left: {list}"
    );
    let (_, rows) = s.get("/api/datasets/qa/rows").await;
    assert!(rows.contains("Be brief."));
    let (status, _) = s
        .json("DELETE", "/api/datasets/qa", serde_json::json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, err) = s.get("/api/datasets/qa").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(err.contains("no dataset named `qa`"));
}
