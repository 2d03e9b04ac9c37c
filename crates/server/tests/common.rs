//! A studio on a temporary home, and requests sent to it without a socket.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use ferrotune_server::{app, AppState};
use ferrotune_store::{Home, ImportOptions, Store};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub struct Studio {
    pub dir: tempfile::TempDir,
    pub state: AppState,
}

impl Studio {
    pub fn new(token: Option<&str>) -> Studio {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::new(
            Home::new(dir.path().join("home")),
            None,
            token.map(String::from),
        );
        Studio { dir, state }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("home/server.log")).unwrap_or_default()
    }

    pub fn store(&self) -> Store {
        Store::open(Home::new(self.dir.path().join("home"))).unwrap()
    }

    /// Imports a small dataset whose first prompt is markup.
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

    pub async fn send(
        &self,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
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

    pub async fn get(&self, uri: &str) -> (StatusCode, String) {
        let (s, _, b) = self
            .send(Request::get(uri).body(Body::empty()).unwrap())
            .await;
        (s, b)
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
