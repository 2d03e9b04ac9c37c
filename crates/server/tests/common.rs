//! A studio on a temporary home, requests sent to it without a socket, and a tiny experiment really trained
//! once per test binary whose folder tests place in their studio.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Request, StatusCode};
use ferrotune_config::Experiment;
use ferrotune_server::{app, AppState};
use ferrotune_store::{Home, ImportOptions, StartOptions, Store};
use ferrotune_test_support::{
    copy_dir, experiment_yaml, write_arithmetic_data, write_file, TempHome,
};
use ferrotune_train::events::Event;
use http_body_util::BodyExt;
use tower::ServiceExt;

pub struct Studio {
    pub dir: TempHome,
    pub state: AppState,
}

impl Studio {
    pub fn new(token: Option<&str>) -> Studio {
        let dir = TempHome::new();
        let state = AppState::new(dir.home(), None, token.map(String::from));
        Studio { dir, state }
    }

    /// A studio whose `ferrotune` binary is a stand-in that exits at once: resume and restart queue the
    /// experiment and start "the runner", and nothing runs it, so the queued state stays for the test to see.
    pub fn with_idle_runner() -> Studio {
        let dir = TempHome::new();
        let exe = dir.file("ferrotune", "#!/bin/sh\nexit 0\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = AppState::new(dir.home(), Some(exe), None);
        Studio { dir, state }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.home().root().join("server.log")).unwrap_or_default()
    }

    pub fn store(&self) -> Store {
        Store::open(self.dir.home()).unwrap()
    }

    /// Imports a small dataset whose first prompt is markup.
    /// Queues experiment `name` on registered dataset `dataset` with `backbone` (nothing runs it: no runner).
    pub fn queue_on(&self, name: &str, dataset: &str, backbone: &std::path::Path) {
        let cfg = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "llm_backbone: {}\nexperiment_name: {name}\n",
                backbone.display()
            ),
        )
        .unwrap();
        let mut store = self.store();
        let plan = store
            .plan_experiments(
                &ferrotune_store::StartOptions {
                    config: cfg.into(),
                    dataset: Some(dataset.into()),
                    ..Default::default()
                },
                &|_| Vec::new(),
            )
            .unwrap();
        store.queue_experiments(&plan).unwrap();
    }

    pub fn dataset(&self, name: &str) {
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

    /// Places a copy of the trained experiment folder `from` (see [`trained`]) in this home as experiment
    /// `name`, and registers it as `doctor --rebuild-index` does: the registry rebuilt from the folders, with
    /// the status of its `status.json` and the metrics of its `metrics.jsonl`.
    pub fn place(&self, from: &Path, name: &str) -> PathBuf {
        let dir = self.dir.home().experiments().join(name);
        copy_dir(from, &dir);
        let cfg_path = dir.join("cfg.yaml");
        let mut cfg = Experiment::load(&cfg_path).unwrap();
        cfg.experiment_name = name.into();
        cfg.output_directory = dir.display().to_string();
        cfg.save(&cfg_path).unwrap();
        let report = ferrotune_store::rebuild_index(&self.dir.home()).unwrap();
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        dir
    }

    async fn respond(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, bytes)
    }

    pub async fn send(
        &self,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let (status, headers, bytes) = self.respond(request).await;
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, String) {
        let (s, _, b) = self
            .send(Request::get(uri).body(Body::empty()).unwrap())
            .await;
        (s, b)
    }

    /// A GET whose body is kept as bytes (a zip archive), with the response headers.
    pub async fn get_bytes(&self, uri: &str) -> (StatusCode, HeaderMap, Bytes) {
        self.respond(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    /// The events of a Server-Sent Events response, read as they arrive until `enough` says so (the stream
    /// itself never ends); fails after 30 seconds with what arrived.
    pub async fn events_until(
        &self,
        uri: &str,
        enough: impl Fn(&[(String, String)]) -> bool,
    ) -> Vec<(String, String)> {
        let response = app(self.state.clone())
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        let mut body = response.into_body();
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let events = sse_events(&text);
            if enough(&events) {
                return events;
            }
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .unwrap_or_else(|_| panic!("not enough events in 30 s: {events:?}"))
                .expect("the stream does not end")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// A script's request: JSON, no cookie, no Origin (what a loopback server without a token lets through).
    pub async fn json(
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
    pub async fn upload(&self, file_name: &str, content: &str) -> (StatusCode, String) {
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
    pub async fn session(&self) -> (String, String) {
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

/// The complete `(event, data)` pairs of a Server-Sent Events body (a half-received last one is left out).
pub fn sse_events(body: &str) -> Vec<(String, String)> {
    let complete = body.rfind("\n\n").map_or("", |end| &body[..end]);
    complete
        .split("\n\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_string(), data.to_string()))
        })
        .collect()
}

/// The tiny experiment `tiny` (the arithmetic data imported as dataset `arith`, queued settings as the store
/// plans them), trained in-process by `ferrotune_train::run::run` once per test binary: stopped from its
/// listener after two steps (a copy of its folder then is `stopped`), then resumed to the end (`finished`).
pub struct Trained {
    pub stopped: PathBuf,
    pub finished: PathBuf,
}

/// Optimizer steps of [`Trained`]'s run before it was stopped.
pub const STOPPED_AT: u64 = 2;

pub fn trained() -> &'static Trained {
    static TRAINED: OnceLock<Trained> = OnceLock::new();
    TRAINED.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("server-trained");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let home = Home::new(root.join("home"));
        let mut store = Store::open(home.clone()).unwrap();
        let data = write_arithmetic_data(&root, "arith.json", 24);
        store
            .import_dataset(&ImportOptions {
                name: "arith".into(),
                train: data.clone(),
                ..Default::default()
            })
            .unwrap();
        let config = write_file(&root, "tiny.yaml", experiment_yaml("tiny", &root, &data));
        let plan = store
            .plan_experiments(
                &StartOptions {
                    config: config.into(),
                    dataset: Some("arith".into()),
                    overrides: vec![("training.evaluation_epochs".into(), "0.5".into())],
                    ..Default::default()
                },
                &ferrotune_train::settings::unsupported,
            )
            .unwrap();
        let cfg = &plan.experiments[0].config;
        let run = |resume: bool, stop_after: Option<u64>| {
            let stop = AtomicBool::new(false);
            let mut listener = |event: &Event| {
                if matches!(event, Event::Step { step, .. } if Some(*step) == stop_after) {
                    stop.store(true, Ordering::Relaxed);
                }
            };
            let request = ferrotune_train::run::RunRequest {
                config: cfg,
                home: &home,
                resume,
                stop: &stop,
            };
            ferrotune_train::run::run(request, &mut listener).unwrap()
        };
        assert_eq!(run(false, Some(STOPPED_AT)).status.name(), "stopped");
        let stopped = root.join("stopped");
        copy_dir(&cfg.output_dir(), &stopped);
        assert_eq!(run(true, None).status.name(), "finished");
        Trained {
            stopped,
            finished: cfg.output_dir(),
        }
    })
}
