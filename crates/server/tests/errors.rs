//! Every error of the API in its documented shape (`{"error": …}`), pages as pages, and internal failures as a
//! 500 with a request id whose details are in `server.log`.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};

use crate::common::Studio;

/// Sends `body` with `content_type` and returns the status, the headers and the body parsed as JSON.
async fn send_raw(
    s: &Studio,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let (status, headers, text) = s
        .send(
            Request::builder()
                .method(method)
                .uri(uri)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await;
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {uri} answered {status} without JSON ({e}): {text}"));
    (status, headers, json)
}

fn message(json: &serde_json::Value) -> &str {
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no `error` in {json}"))
}

#[tokio::test]
async fn malformed_json_is_a_400_in_the_api_shape() {
    let s = Studio::new(None);
    let (status, headers, e) = send_raw(
        &s,
        "PUT",
        "/api/settings",
        "application/json",
        "{\"max_upload_mb\": 5,",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(message(&e).starts_with("the body is not valid JSON"), "{e}");
    assert!(message(&e).contains("help:"), "{e}");
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_a_422_naming_the_field() {
    let s = Studio::new(None);
    let (status, _, e) = send_raw(
        &s,
        "PUT",
        "/api/settings",
        "application/json",
        r#"{"max_upload_mb": "lots", "max_epochs": 3, "experiment_defaults": {}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(message(&e).contains("max_upload_mb"), "{e}");
    assert!(message(&e).contains("invalid type"), "{e}");
    // The example of docs/api.md, word for word.
    let (status, _, e) = send_raw(
        &s,
        "PUT",
        "/api/settings",
        "application/json",
        r#"{"max_epochs": "ten"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(
        message(&e),
        "the JSON body does not fit this route: max_epochs: invalid type: string \"ten\", expected u64 at line 1 column 20\nhelp: docs/api.md lists each route's fields and their types"
    );
    // Nested fields are named by their path (the chat's settings; the body is read before the experiment).
    let (status, _, e) = send_raw(
        &s,
        "POST",
        "/api/experiments/nobody/chat",
        "application/json",
        r#"{"messages": [], "settings": {"max_new_tokens": "many"}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(message(&e).contains("settings.max_new_tokens"), "{e}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415_and_an_upload_that_is_not_multipart_a_400() {
    let s = Studio::new(None);
    let (status, _, e) = send_raw(
        &s,
        "POST",
        "/api/backbones",
        "text/plain",
        r#"{"name": "x", "path": "/tmp"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{e}");
    assert!(
        message(&e).contains("Content-Type: application/json"),
        "{e}"
    );
    let (status, _, e) = send_raw(&s, "POST", "/api/uploads", "application/json", "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(message(&e).contains("multipart/form-data"), "{e}");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_under_api_and_pages_elsewhere() {
    let s = Studio::new(None);
    let (status, headers, e) =
        send_raw(&s, "GET", "/api/no-such-thing", "application/json", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(message(&e).contains("GET /api/no-such-thing"), "{e}");
    let (status, headers, e) =
        send_raw(&s, "DELETE", "/api/settings", "application/json", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{e}");
    assert!(message(&e).contains("DELETE /api/settings"), "{e}");
    let allow = headers[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("PUT"), "{allow}");
    // A route with a parameter, and a path parameter that is not UTF-8 once decoded.
    let (status, _, e) = send_raw(&s, "PATCH", "/api/datasets/x", "application/json", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{e}");
    let (status, _, e) = send_raw(&s, "GET", "/api/datasets/%FF", "application/json", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(message(&e).starts_with("the path does not fit"), "{e}");
    // Pages keep HTML errors.
    for (method, uri, expected) in [
        ("DELETE", "/settings", StatusCode::METHOD_NOT_ALLOWED),
        ("GET", "/no-such-page", StatusCode::NOT_FOUND),
        ("GET", "/datasets/%FF", StatusCode::BAD_REQUEST),
    ] {
        let (status, headers, body) = s
            .send(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(status, expected, "{method} {uri}: {body}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{method} {uri}"
        );
        assert!(
            body.contains("<main id=\"main\">"),
            "{method} {uri}: {body}"
        );
    }
}

#[tokio::test]
async fn the_login_form_rejects_as_a_page() {
    let s = Studio::new(Some("sesame"));
    let (status, headers, body) = s
        .send(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"token\": \"sesame\"}"))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(body.contains("x-www-form-urlencoded"), "{body}");
}

/// The request id of an internal error's message, checked to read as ours (not the user's fault).
fn request_id(message: &str) -> String {
    assert!(
        message.starts_with("internal error (request "),
        "not an internal error: {message}"
    );
    assert!(message.contains("server.log"), "{message}");
    assert!(!message.contains("help:"), "{message}");
    message["internal error (request ".len()..]
        .split(')')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_broken_home_is_a_500_with_a_request_id_and_the_details_in_the_log() {
    let s = Studio::new(None);
    // `datasets` is a file where the store needs a folder: every store operation fails with an i/o error.
    let home = s.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("datasets"), "not a folder").unwrap();
    let (status, e) = s
        .json("GET", "/api/experiments", serde_json::json!({}))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{e}");
    let id = request_id(message(&e));
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("request {id}:")))
        .unwrap_or_else(|| panic!("no line for request {id} in server.log: {log}"));
    assert!(line.contains("GET /api/experiments"), "{line}");
    assert!(
        line.contains("datasets"),
        "the details name the path: {line}"
    );
    // A page fails the same way, as a page, and is logged too.
    let (status, body) = s.get("/experiments").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("internal error (request "), "{body}");
    assert_eq!(s.log().lines().count(), 2, "{}", s.log());
}

#[tokio::test]
async fn a_chat_on_a_corrupt_backbone_is_an_internal_error_in_the_stream_and_the_log() {
    let s = Studio::new(None);
    s.dataset("arith");
    // A copy of the tiny backbone whose weights file is cut short.
    let backbone = s.dir.path().join("broken-backbone");
    ferrotune_test_support::copy_dir(
        &ferrotune_test_support::model_fixture("llama3_rope"),
        &backbone,
    );
    s.queue_on("talk", "arith", &backbone);
    let weights = backbone.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..64]).unwrap();
    let (status, _, body) = s
        .send(
            Request::post("/api/experiments/talk/chat")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    serde_json::json!({"messages": [{"role": "user", "content": "Hi"}]})
                        .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "an event stream: {body}");
    let error = body
        .split("\n\n")
        .find(|block| block.contains("event: error"))
        .and_then(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
        .unwrap_or_else(|| panic!("no error event: {body}"));
    let error: String = serde_json::from_str(error).unwrap();
    let id = request_id(&error);
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("request {id}:")))
        .unwrap_or_else(|| panic!("no line for request {id} in server.log: {log}"));
    assert!(
        line.contains("POST /api/experiments/talk/chat") && line.contains("cannot load backbone"),
        "{line}"
    );
    assert!(line.contains("model.safetensors"), "{line}");
}
