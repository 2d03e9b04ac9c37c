//! Registered backbones and what their files say.

use axum::http::StatusCode;

use crate::common::Studio;

#[tokio::test]
async fn backbones_register_describe_and_unregister() {
    let s = Studio::new(None);
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures/llama3_rope");
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
