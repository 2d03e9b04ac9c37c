//! Handler tests without a socket: `app(state).oneshot(request)` against a temporary home.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use ferrotune_server::{app, AppState};
use ferrotune_store::{Home, ImportOptions, Store};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Studio {
    dir: tempfile::TempDir,
    state: AppState,
}

impl Studio {
    fn new(token: Option<&str>) -> Studio {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::new(
            Home::new(dir.path().join("home")),
            None,
            token.map(String::from),
        );
        Studio { dir, state }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("home/server.log")).unwrap_or_default()
    }

    fn store(&self) -> Store {
        Store::open(Home::new(self.dir.path().join("home"))).unwrap()
    }

    /// Imports a small dataset whose first prompt is markup.
    fn dataset(&self, name: &str) {
        let file = self.dir.path().join(format!("{name}.json"));
        let rows: Vec<serde_json::Value> = (0..6)
            .map(|i| serde_json::json!({"instruction": if i == 0 { "<script>alert('x')</script>".to_string() } else { format!("question {i}") }, "input": "", "output": format!("answer {i}")}))
            .collect();
        std::fs::write(&file, serde_json::to_string(&rows).unwrap()).unwrap();
        self.store()
            .import_dataset(&ImportOptions {
                name: name.into(),
                train: file,
                ..Default::default()
            })
            .unwrap();
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    async fn get(&self, uri: &str) -> (StatusCode, String) {
        let (s, _, b) = self
            .send(Request::get(uri).body(Body::empty()).unwrap())
            .await;
        (s, b)
    }

    /// A script's request: JSON, no cookie, no Origin (what a loopback server without a token lets through).
    async fn json(
        &self,
        method: &str,
        uri: &str,
        body: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let (s, _, b) = self
            .send(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await;
        (
            s,
            serde_json::from_str(&b).unwrap_or(serde_json::Value::String(b)),
        )
    }

    /// Uploads `content` as multipart field `file` named `file_name`.
    async fn upload(&self, file_name: &str, content: &str) -> (StatusCode, String) {
        let boundary = "XBOUNDARY";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\r\n{content}\r\n--{boundary}--\r\n"
        );
        let (status, _, text) = self
            .send(
                Request::post("/api/uploads")
                    .header(
                        header::CONTENT_TYPE,
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        (status, text)
    }

    /// A page visit: the session cookie and the page's forgery-protection token.
    async fn session(&self) -> (String, String) {
        let (_, headers, body) = self
            .send(Request::get("/settings").body(Body::empty()).unwrap())
            .await;
        let cookie = headers[header::SET_COOKIE].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        let token = body
            .split("name=\"csrf-token\" content=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        (cookie, token)
    }
}

#[tokio::test]
async fn every_page_renders_on_an_empty_home() {
    let s = Studio::new(None);
    for page in [
        "/",
        "/backbones",
        "/datasets",
        "/datasets/new",
        "/experiments",
        "/experiments/new",
        "/settings",
    ] {
        let (status, body) = s.get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {body}");
        assert!(body.contains("<main id=\"main\">"), "{page}");
    }
    let (status, body) = s.get("/api/system").await;
    assert_eq!(status, StatusCode::OK);
    let sys: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(sys["cpus"].as_u64().unwrap() >= 1 && sys["memory_total"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn user_text_is_escaped_in_pages() {
    let s = Studio::new(None);
    s.dataset("marked");
    let (status, body) = s.get("/datasets/marked").await;
    assert_eq!(status, StatusCode::OK, "{body} {}", s.log());
    assert!(!body.contains("<script>alert"), "raw markup in the page");
    assert!(
        body.contains("&lt;script&gt;alert("),
        "the row is shown as text"
    );
    // A path that holds markup comes back in the 404 page as text.
    let (status, body) = s.get("/no/%3Cscript%3Ealert(1)%3C/script%3E").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!body.contains("<script>alert") && body.contains("&lt;script&gt;"));
    // And in the dataset list, the API returns the row verbatim (JSON, not HTML).
    let (_, rows) = s.get("/api/datasets/marked/rows?n=1").await;
    assert!(rows.contains("<script>alert('x')</script>"));
}

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
    let mut settings = s.state.settings();
    settings.max_upload_mb = 1;
    s.state.save_settings(settings).unwrap();
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

#[tokio::test]
async fn form_validation_reports_problems_per_setting() {
    let s = Studio::new(None);
    let (status, schema) = s.get("/api/schema").await;
    assert_eq!(status, StatusCode::OK);
    let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
    assert!(schema["settings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["key"] == "training.learning_rate"));
    let (status, v) = s
        .json(
            "POST",
            "/api/experiments/validate",
            serde_json::json!({"values": {"training.learning_rate": "fast", "training.epochs": "1000", "llm_backbone": "/no/such/model"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let keys: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"training.learning_rate"), "{v}");
    assert!(
        keys.contains(&"training.epochs"),
        "the studio's epoch limit: {v}"
    );
    assert!(keys.contains(&"llm_backbone"), "{v}");
    // Queueing the same form is refused with the same problems (422), nothing registered.
    let (status, e) = s
        .json(
            "POST",
            "/api/experiments",
            serde_json::json!({"values": {"training.learning_rate": "fast"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["errors"][0]["key"], "training.learning_rate");
    let (_, list) = s.get("/api/experiments").await;
    assert_eq!(list, "[]");
}

#[tokio::test]
async fn forgery_protection_and_access_token() {
    // A page's session without its token cannot change anything; with it, it can.
    let s = Studio::new(None);
    let (cookie, token) = s.session().await;
    let body = serde_json::json!({"max_upload_mb": 5, "max_epochs": 3, "experiment_defaults": {}})
        .to_string();
    let put = |csrf: Option<&str>| {
        let mut r = Request::put("/api/settings")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::COOKIE, cookie.clone())
            .header(header::ORIGIN, "http://evil.example");
        if let Some(t) = csrf {
            r = r.header("X-CSRF-Token", t);
        }
        r.body(Body::from(body.clone())).unwrap()
    };
    let (status, _, text) = s.send(put(None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    let (status, _, _) = s.send(put(Some("0123456789abcdef0123456789abcdef"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, text) = s.send(put(Some(&token))).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(s.state.settings().max_epochs, 3);
    let (cookie_line, _) = (cookie, ());
    assert!(cookie_line.starts_with("ft_session="));

    // With a token: 401 for the API, the login page for pages, and the cookie after logging in.
    let s = Studio::new(Some("sesame"));
    let (status, body) = s.get("/api/experiments").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, headers, _) = s
        .send(Request::get("/experiments").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/login?next=/experiments");
    let (status, _, _) = s
        .send(
            Request::get("/api/experiments")
                .header(header::AUTHORIZATION, "Bearer sesame")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let login = |token: &str| {
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}&next=/datasets")))
            .unwrap()
    };
    let (status, _, _) = s.send(login("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, headers, _) = s.send(login("sesame")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/datasets");
    let set = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("ft_token="))
        .unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
    let (status, _, _) = s
        .send(
            Request::get("/experiments")
                .header(header::COOKIE, set.split(';').next().unwrap())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Without a token, a bearer-less script request from a browser origin is refused.
    let s = Studio::new(Some("sesame"));
    let (status, _) = s.json("PUT", "/api/settings", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn library_errors_are_readable_json_and_unknown_routes_say_so() {
    let s = Studio::new(None);
    let (status, body) = s.get("/api/experiments/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("no experiment named `nothing`"));
    let (status, body) = s.get("/api/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("docs/api.md"));
    let (status, body) = s.get("/experiments/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("no experiment named"),
        "a page, not a stack trace: {body}"
    );
    let (status, body) = s.get("/compare?names=a").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("at least two experiments"));
}

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

#[tokio::test]
async fn grids_show_their_runs_and_warnings_need_start_anyway() {
    let s = Studio::new(None);
    s.dataset("arith");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures/llama3_rope");
    let base = |extra: serde_json::Value| {
        let mut values = serde_json::json!({"llm_backbone": fixture, "experiment_name": "g", "grid_search": "true"});
        for (k, v) in extra.as_object().unwrap() {
            values[k] = v.clone();
        }
        serde_json::json!({"values": values, "dataset": "arith"})
    };
    let (status, v) = s
        .json("POST", "/api/experiments/validate", base(serde_json::json!({"training.learning_rate": "[0.01, 0.02]", "training.lora_r": "[2, 4]"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["errors"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["runs"].as_array().unwrap().len(), 4, "{v}");
    // A grid with nothing to vary warns; queueing it needs start_anyway (and this server cannot run it).
    let (_, v) = s
        .json(
            "POST",
            "/api/experiments/validate",
            base(serde_json::json!({})),
        )
        .await;
    assert_eq!(v["warnings"][0]["key"], "grid_search", "{v}");
    let (status, e) = s
        .json("POST", "/api/experiments", base(serde_json::json!({})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["warnings"][0]["key"], "grid_search");
    let mut anyway = base(serde_json::json!({}));
    anyway["start_anyway"] = serde_json::json!(true);
    let (status, e) = s.json("POST", "/api/experiments", anyway).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{e}");
    let (_, list) = s.get("/api/experiments").await;
    assert_eq!(list, "[]", "nothing is queued that cannot run");
    // A YAML file becomes form values.
    let (status, values) = s
        .json(
            "POST",
            "/api/experiments/form-values",
            serde_json::json!({"yaml": "training:\n  learning_rate: 0.003\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(values["training.learning_rate"], "0.003");
    let (status, e) = s
        .json(
            "POST",
            "/api/experiments/form-values",
            serde_json::json!({"yaml": "training:\n  learnin_rate: 1\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        e.to_string().contains("learning_rate"),
        "the closest key is suggested: {e}"
    );
}

#[tokio::test]
async fn chat_streams_tokens_then_done_from_the_backbone_while_no_adapter_exists() {
    let s = Studio::new(None);
    s.dataset("arith");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures/llama3_rope");
    let cfg = s.dir.path().join("cfg.yaml");
    std::fs::write(
        &cfg,
        format!(
            "llm_backbone: {}\nexperiment_name: talk\n",
            fixture.display()
        ),
    )
    .unwrap();
    let mut store = s.store();
    let plan = store
        .plan_experiments(
            &ferrotune_store::StartOptions {
                config: cfg,
                dataset: Some("arith".into()),
                ..Default::default()
            },
            &|_| Vec::new(),
        )
        .unwrap();
    store.queue_experiments(&plan).unwrap();
    let (status, _, body) = s
        .send(
            Request::post("/api/experiments/talk/chat")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    serde_json::json!({"messages": [{"role": "user", "content": "Hi <b>"}], "settings": {"max_new_tokens": 6}})
                        .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events: Vec<(&str, &str)> = body
        .split("\n\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event, data))
        })
        .collect();
    assert_eq!(events[0].0, "info");
    assert!(events[0].1.contains("no adapter yet"), "{events:?}");
    let tokens: String = events
        .iter()
        .filter(|(e, _)| *e == "token")
        .map(|(_, d)| serde_json::from_str::<String>(d).unwrap())
        .collect();
    let (last, done) = events.last().unwrap();
    assert_eq!(*last, "done", "{events:?}");
    let done: serde_json::Value = serde_json::from_str(done).unwrap();
    assert_eq!(done["text"], tokens, "the streamed pieces make the answer");
    assert!(done["tokens"].as_u64().unwrap() >= 1);
    // A conversation that does not end with the user is refused in the stream, readably.
    let (_, _, body) = s
        .send(
            Request::post("/api/experiments/talk/chat")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::json!({"messages": []}).to_string()))
                .unwrap(),
        )
        .await;
    assert!(
        body.contains("event: error") && body.contains("must end with a user message"),
        "{body}"
    );
}
