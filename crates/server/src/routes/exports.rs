//! The Downloads tab's exports: `POST /api/experiments/{name}/exports` with `{"format": "hf"|"gguf"|"gguf-adapter",
//! "gguf_type": "q8_0", "dtype": "float16"}` starts a background export (`ferrotune_export`, the engine of
//! `ferrotune export`) into the run folder's `exports/<kind>/` and answers 202 at once; its progress goes out as
//! `export` events on the experiment's SSE stream. `GET …/exports` lists the jobs of this server and the exports
//! on disk; `GET …/exports/{kind}/download` downloads one (the GGUF file, or the folder as a zip).

use std::collections::HashMap;
use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ferrotune_store::{ExportDtype, ExportFormat, ExportRecord, ExportRequest, GgufType};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{AppJson, AppPath};
use crate::routes::runs::attachment;
use crate::state::AppState;

pub fn api() -> Router<AppState> {
    Router::new()
        .route("/experiments/{name}/exports", get(list).post(start))
        .route("/experiments/{name}/exports/{kind}/download", get(download))
}

/// One export this server started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ExportJob {
    pub kind: String,
    pub format: &'static str,
    /// `running`, `finished` or `failed`.
    pub state: &'static str,
    /// Tensors written of `total`.
    pub done: usize,
    pub total: usize,
    /// Why it failed.
    pub message: String,
    /// Where it is on disk (when finished).
    pub path: Option<PathBuf>,
    /// Where to download it (when finished).
    pub download: Option<String>,
}

/// Export jobs by experiment name.
pub(crate) type ExportJobs = std::sync::Mutex<HashMap<String, Vec<ExportJob>>>;

#[derive(Debug, Deserialize)]
struct ExportBody {
    format: String,
    #[serde(default)]
    gguf_type: Option<String>,
    #[serde(default)]
    dtype: Option<String>,
}

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> String {
    all.iter()
        .map(|&t| format!("`{}`", name(t)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ExportBody {
    fn request(&self) -> Result<ExportRequest, ApiError> {
        let format = ExportFormat::parse(&self.format).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`format` is `{}`; it is one of {}",
                self.format,
                names(&ExportFormat::ALL, ExportFormat::name)
            ))
        })?;
        let gguf_type = match &self.gguf_type {
            None => GgufType::Q8_0,
            Some(t) => GgufType::parse(t).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`gguf_type` is `{t}`; it is one of {}",
                    names(&GgufType::ALL, GgufType::name)
                ))
            })?,
        };
        let dtype = match &self.dtype {
            None => None,
            Some(d) => Some(ExportDtype::parse(d).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`dtype` is `{d}`; it is one of {}",
                    names(&ExportDtype::ALL, ExportDtype::name)
                ))
            })?),
        };
        Ok(ExportRequest {
            format,
            gguf_type,
            dtype,
        })
    }
}

fn download_url(name: &str, kind: &str) -> String {
    format!(
        "/api/experiments/{}/exports/{kind}/download",
        crate::security::urlencode(name).replace('/', "%2F")
    )
}

/// Updates job `kind` of experiment `name`.
fn update(state: &AppState, name: &str, kind: &str, f: impl FnOnce(&mut ExportJob)) {
    let mut jobs = state.exports.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(job) = jobs
        .get_mut(name)
        .and_then(|v| v.iter_mut().find(|j| j.kind == kind))
    {
        f(job);
    }
}

/// The jobs of experiment `name` (for the SSE stream).
pub(crate) fn jobs_of(state: &AppState, name: &str) -> Vec<ExportJob> {
    let jobs = state.exports.lock().unwrap_or_else(|p| p.into_inner());
    jobs.get(name).cloned().unwrap_or_default()
}

async fn start(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
    AppJson(body): AppJson<ExportBody>,
) -> Result<Response, ApiError> {
    let request = body.request()?;
    let kind = request.kind();
    if jobs_of(&state, &name)
        .iter()
        .any(|j| j.kind == kind && j.state == "running")
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("an export `{kind}` of `{name}` is already running\nhelp: wait for it; its progress is shown in the Downloads tab"),
        ));
    }
    let n = name.clone();
    let planned = state
        .with_store(move |s| Ok(s.plan_export(&n, request)?))
        .await?;
    let job = ExportJob {
        kind: kind.clone(),
        format: request.format.name(),
        state: "running",
        done: 0,
        total: 0,
        message: String::new(),
        path: None,
        download: None,
    };
    {
        let mut jobs = state.exports.lock().unwrap_or_else(|p| p.into_inner());
        let list = jobs.entry(name.clone()).or_default();
        list.retain(|j| j.kind != kind);
        list.push(job.clone());
    }
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let result = planned
            .run(&mut |p| update(&st, &name, &kind, |j| (j.done, j.total) = (p.done, p.total)));
        update(&st, &name, &kind, |j| match result {
            Ok(record) => {
                j.state = "finished";
                j.download = Some(download_url(&name, &record.kind));
                j.path = Some(record.path);
            }
            Err(e) => {
                j.state = "failed";
                j.message = e.to_string();
            }
        });
    });
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

/// `GET …/exports`.
#[derive(Debug, Serialize)]
struct ExportList {
    jobs: Vec<ExportJob>,
    exports: Vec<ExportView>,
}

#[derive(Debug, Serialize)]
struct ExportView {
    #[serde(flatten)]
    record: ExportRecord,
    download: String,
}

async fn list(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<ExportList>, ApiError> {
    let n = name.clone();
    let records = state.with_store(move |s| Ok(s.exports(&n)?)).await?;
    Ok(Json(ExportList {
        jobs: jobs_of(&state, &name),
        exports: records
            .into_iter()
            .map(|record| ExportView {
                download: download_url(&name, &record.kind),
                record,
            })
            .collect(),
    }))
}

async fn download(
    State(state): State<AppState>,
    AppPath((name, kind)): AppPath<(String, String)>,
) -> Result<Response, ApiError> {
    let file = state
        .with_store(move |s| Ok(s.export_download(&name, &kind)?))
        .await?;
    let content_type = if file.file_name.ends_with(".zip") {
        "application/zip"
    } else {
        "application/octet-stream"
    };
    Ok(attachment(file.bytes, content_type, &file.file_name))
}
