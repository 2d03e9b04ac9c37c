//! `/v1` handlers: the model list, chat and text completions (whole and streamed) in OpenAI's shapes, and every
//! error in OpenAI's error shape.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use ferrotune_server::{AppState, EngineOptions};
use serde_json::{json, Value};

use crate::common::{trained, Studio};

/// A studio holding the trained tiny experiment as `tiny`.
fn studio() -> Studio {
    let s = Studio::new(None);
    s.place(&trained().finished, "tiny");
    s
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// The `data:` payloads of an SSE body.
fn data_lines(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(String::from)
        .collect()
}

fn assert_openai_error(body: &Value, kind: &str, param: Option<&str>, code: Option<&str>) {
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(e["type"], kind, "{body}");
    assert_eq!(e["param"].as_str(), param, "{body}");
    assert_eq!(e["code"].as_str(), code, "{body}");
}

#[tokio::test]
async fn models_lists_finished_experiments_and_backbones_in_openais_shape() {
    let s = studio();
    let (status, body) = s.json("GET", "/v1/models", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().unwrap();
    let tiny = data
        .iter()
        .find(|m| m["id"] == "tiny")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(
        (tiny["object"].as_str(), tiny["owned_by"].as_str()),
        (Some("model"), Some("ferrotune"))
    );
    assert!(tiny["created"].as_u64().is_some());
}

#[tokio::test]
async fn a_chat_completion_answers_whole_and_streamed_with_the_same_greedy_text() {
    let s = studio();
    let request = json!({"model": "tiny", "messages": user("Add 2 and 3."), "max_tokens": 8, "temperature": 0});
    let (status, whole) = s
        .json("POST", "/v1/chat/completions", request.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(whole["object"], "chat.completion");
    assert!(whole["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(whole["model"], "tiny");
    let choice = &whole["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    let text = choice["message"]["content"].as_str().unwrap().to_string();
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    let usage = &whole["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!((1..=8).contains(&completion), "{usage}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap() + completion)
    );
    // Streamed: role first, content deltas, the finish chunk, the usage chunk, [DONE].
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, headers, body) = s
        .send(
            Request::post("/v1/chat/completions")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(streamed.to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    let lines = data_lines(&body);
    assert_eq!(lines.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(joined, text, "the streamed deltas make the whole answer");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(
        finish["choices"][0]["finish_reason"],
        choice["finish_reason"]
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], *usage);
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["usage"].is_null()));
}

#[tokio::test]
async fn text_completions_take_a_list_of_prompts_and_stop_strings() {
    let s = studio();
    let (status, body) = s
        .json(
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": ["1 + 1 =", "2 + 2 ="], "max_tokens": 5, "temperature": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "text_completion");
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(
        (choices[0]["index"].as_u64(), choices[1]["index"].as_u64()),
        (Some(0), Some(1))
    );
    // A stop string taken from the first answer ends it before that text.
    let first = choices[0]["text"].as_str().unwrap();
    if let Some(stop) = first.get(1..3).filter(|s| !s.trim().is_empty()) {
        let (_, cut) = s
            .json(
                "POST",
                "/v1/completions",
                json!({"model": "tiny", "prompt": "1 + 1 =", "max_tokens": 5, "temperature": 0, "stop": stop}),
            )
            .await;
        assert_eq!(cut["choices"][0]["finish_reason"], "stop", "{cut}");
        assert!(
            !cut["choices"][0]["text"].as_str().unwrap().contains(stop),
            "{cut}"
        );
    }
}

#[tokio::test]
async fn errors_come_in_openais_shape() {
    let s = studio();
    let (status, body) = s
        .json(
            "POST",
            "/v1/chat/completions",
            json!({"model": "nobody", "messages": user("x")}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_openai_error(
        &body,
        "invalid_request_error",
        Some("model"),
        Some("model_not_found"),
    );
    let (status, body) = s
        .json(
            "POST",
            "/v1/chat/completions",
            json!({"model": "tiny", "messages": user("x"), "temperature": 9}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_openai_error(&body, "invalid_request_error", Some("temperature"), None);
    let (status, body) = s
        .send(
            Request::post("/v1/chat/completions")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await
        .pipe(|(s, _, b)| (s, serde_json::from_str::<Value>(&b).unwrap()));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_openai_error(&body, "invalid_request_error", Some("body"), None);
    let (status, body) = s.json("GET", "/v1/nothing", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_openai_error(&body, "invalid_request_error", None, Some("unknown_url"));
    // A prompt longer than the model's context.
    let long = "word ".repeat(5000);
    let (status, body) = s
        .json(
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": long, "max_tokens": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_openai_error(
        &body,
        "invalid_request_error",
        Some("messages"),
        Some("context_length_exceeded"),
    );
}

#[tokio::test]
async fn a_bad_token_is_401_and_a_full_queue_429_with_retry_after() {
    let s = Studio::new(Some("secret"));
    let (status, body) = s.json("GET", "/v1/models", Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_openai_error(
        &body,
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    );
    let (status, _, _) = s
        .send(
            Request::get("/v1/models")
                .header(header::AUTHORIZATION, "Bearer secret")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Clients keep cookies (the openai client's httpx does): /v1 needs no forgery-protection token and sets no
    // session cookie; a browser's cross-site request (an Origin) is refused on a server without a token.
    let open = studio();
    let post = |extra: (&'static str, &'static str)| {
        Request::post("/v1/chat/completions")
            .header(header::CONTENT_TYPE, "application/json")
            .header(extra.0, extra.1)
            .body(Body::from(
                json!({"model": "tiny", "messages": user("x"), "max_tokens": 2}).to_string(),
            ))
            .unwrap()
    };
    let (status, headers, body) = open
        .send(post((
            "cookie",
            "ferrotune_session=0123456789abcdef0123456789abcdef",
        )))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!headers.contains_key(header::SET_COOKIE));
    let (status, _, body) = open.send(post(("origin", "https://evil.example"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_openai_error(
        &serde_json::from_str(&body).unwrap(),
        "invalid_request_error",
        None,
        None,
    );
    // An engine that takes no waiting request answers every completion with 429.
    let full = Studio::new(None);
    full.place(&trained().finished, "tiny");
    let state = AppState::with_engine(
        full.dir.home(),
        None,
        None,
        EngineOptions {
            max_queue: 0,
            ..Default::default()
        },
        None,
    );
    let response = tower::ServiceExt::oneshot(
        ferrotune_server::app(state),
        Request::post("/v1/chat/completions")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"model": "tiny", "messages": user("x")}).to_string(),
            ))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}
