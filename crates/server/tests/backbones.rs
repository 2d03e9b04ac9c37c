//! Registered backbones and what their files say.

use axum::http::StatusCode;

use ferrotune_test_support::model_fixture;

use crate::common::Studio;

#[tokio::test]
async fn backbones_register_describe_and_unregister() {
    let s = Studio::new(None);
    let fixture = model_fixture("llama3_rope");
    let (status, b) = s
        .json(
            "POST",
            "/api/backbones",
            serde_json::json!({"name": "tiny", "path": fixture}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    assert_eq!(b["architecture"], "LlamaForCausalLM");
    assert!(b["parameters"].as_u64().unwrap() > 1000);
    assert!(b["size_bytes"].as_u64().unwrap() > 100_000);
    let (status, e) = s
        .json(
            "POST",
            "/api/backbones",
            serde_json::json!({"name": "bad", "path": s.dir.path()}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(e["error"].as_str().unwrap().contains("config.json"), "{e}");
    let (_, page) = s.get("/backbones").await;
    assert!(page.contains("LlamaForCausalLM"));
    let (status, _) = s
        .json("DELETE", "/api/backbones/tiny", serde_json::json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_gguf_file_is_imported_into_the_home_and_registered() {
    let s = Studio::new(None);
    let gguf = model_fixture("gguf_llama").join("model.gguf");
    let (status, b) = s
        .json(
            "POST",
            "/api/backbones/import-gguf",
            serde_json::json!({"name": "from-gguf", "file": gguf}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    let dir = s.dir.path().join("home/backbones/from-gguf");
    assert_eq!(b["path"], serde_json::json!(dir));
    assert_eq!(b["architecture"], "LlamaForCausalLM");
    assert!(dir.join("config.json").is_file() && dir.join("model.safetensors").is_file());
    // The same name again, a missing file and a file that is not GGUF are refused readably.
    let (status, _) = s
        .json(
            "POST",
            "/api/backbones/import-gguf",
            serde_json::json!({"name": "from-gguf", "file": gguf}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, e) = s
        .json(
            "POST",
            "/api/backbones/import-gguf",
            serde_json::json!({"name": "x", "file": "/no/such.gguf"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    let not_gguf = s.dir.path().join("fake.gguf");
    std::fs::write(&not_gguf, "hello").unwrap();
    let (status, e) = s
        .json(
            "POST",
            "/api/backbones/import-gguf",
            serde_json::json!({"name": "y", "file": not_gguf}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("cannot import"),
        "{e}"
    );
    assert!(
        !s.dir.path().join("home/backbones/y").exists(),
        "a failed import leaves no folder"
    );
}
