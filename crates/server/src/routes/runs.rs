//! One experiment: `/experiments/{name}` (tabs: charts, summary, train data, validation predictions, logs,
//! config, chat, downloads) and `/api/experiments/{name}…` (show, stop, resume, restart, rename, delete, its
//! metrics, logs, config, first batch, predictions, downloads).

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use ferrotune_config::Experiment;
use ferrotune_home::Event;
use ferrotune_store::{Artifact, ExperimentInfo, Predictions, Stopped};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, PageError};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::security::Csrf;
use crate::state::AppState;
use crate::views;

pub fn api() -> Router<AppState> {
    Router::new()
        .route(
            "/experiments/{name}",
            get(experiment_show).delete(experiment_delete),
        )
        .route("/experiments/{name}/stop", post(experiment_stop))
        .route("/experiments/{name}/resume", post(experiment_resume))
        .route("/experiments/{name}/restart", post(experiment_restart))
        .route("/experiments/{name}/rename", post(experiment_rename))
        .route("/experiments/{name}/metrics", get(experiment_metrics))
        .route("/experiments/{name}/logs", get(experiment_logs))
        .route("/experiments/{name}/config", get(experiment_config))
        .route(
            "/experiments/{name}/first-batch",
            get(experiment_first_batch),
        )
        .route(
            "/experiments/{name}/predictions",
            get(experiment_predictions),
        )
        .route(
            "/experiments/{name}/download/{what}",
            get(experiment_download),
        )
}

pub fn pages() -> Router<AppState> {
    Router::new().route("/experiments/{name}", get(experiment_page))
}

/// What the Summary tab shows.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The settings that matter most, as `key: value`.
    pub settings: Vec<(String, String)>,
    /// Median tokens per second over the training steps.
    pub tokens_per_second: Option<f64>,
    pub median_step_seconds: Option<f64>,
    /// The run's peak resident memory (its `peak_memory` event at the end), in GiB.
    pub peak_memory: Option<String>,
    /// Seconds from start to end (or to now while running).
    pub duration: Option<u64>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

const SUMMARY_KEYS: &[&str] = &[
    "llm_backbone",
    "dataset.train_dataframe",
    "architecture.backbone_dtype",
    "training.epochs",
    "training.batch_size",
    "training.learning_rate",
    "training.lora",
    "training.lora_r",
    "training.lora_alpha",
    "tokenizer.max_length",
    "prediction.metric",
];

/// The summary of `info`, from the run's `events`.
pub fn summary(info: &ExperimentInfo, events: &[Event]) -> Summary {
    let cfg = Experiment::from_yaml_str(&info.config, &info.name).ok();
    let settings = cfg
        .map(|cfg| {
            SUMMARY_KEYS
                .iter()
                .filter_map(|k| Some((k.to_string(), super::experiments::form_text(&cfg.get(k)?))))
                .collect()
        })
        .unwrap_or_default();
    let mut tokens_per_second = Vec::new();
    let mut step_seconds = Vec::new();
    let mut peak = None;
    for e in events {
        match e {
            Event::Step {
                tokens_per_second: t,
                step_seconds: s,
                ..
            } => {
                tokens_per_second.push(*t);
                step_seconds.push(*s);
            }
            Event::PeakMemory {
                bytes,
                end_of_run: true,
                ..
            } => peak = Some(*bytes),
            _ => {}
        }
    }
    let end = info.finished.unwrap_or_else(crate::state::now);
    Summary {
        settings,
        tokens_per_second: median(tokens_per_second),
        median_step_seconds: median(step_seconds),
        peak_memory: peak.map(|b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)),
        duration: info.started.map(|s| end.saturating_sub(s)),
    }
}

/// `GET /api/experiments/{name}`.
#[derive(Debug, Serialize)]
pub struct ExperimentView {
    #[serde(flatten)]
    pub info: ExperimentInfo,
    pub summary: Summary,
    /// Every download and whether the run has written it yet.
    pub downloads: Vec<DownloadView>,
}

/// One entry of the Downloads tab.
#[derive(Debug, Serialize)]
pub struct DownloadView {
    pub name: &'static str,
    pub title: &'static str,
    pub ready: bool,
}

fn download_views(artifacts: &[(Artifact, bool)]) -> Vec<DownloadView> {
    artifacts
        .iter()
        .map(|&(a, ready)| DownloadView {
            name: a.name(),
            title: a.title(),
            ready,
        })
        .collect()
}

/// The experiment and its run's events so far.
async fn find_with_events(
    state: &AppState,
    name: String,
) -> Result<(ExperimentInfo, Vec<Event>), ApiError> {
    state
        .with_store(move |s| Ok((s.experiment(&name)?, s.run_events(&name)?)))
        .await
}

async fn experiment_show(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<ExperimentView>, ApiError> {
    let n = name.clone();
    let (info, events) = find_with_events(&state, name).await?;
    let artifacts = state.with_store(move |s| Ok(s.artifacts(&n)?)).await?;
    let summary = summary(&info, &events);
    Ok(Json(ExperimentView {
        info,
        summary,
        downloads: download_views(&artifacts),
    }))
}

#[derive(Debug, Serialize)]
struct StopView {
    stopped: &'static str,
    experiment: ExperimentInfo,
}

async fn experiment_stop(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<StopView>, ApiError> {
    let view = state
        .with_store(move |s| {
            let how = match s.stop_experiment(&name)? {
                Stopped::Signalled { .. } => "signalled",
                Stopped::Unqueued => "unqueued",
                Stopped::AlreadyEnded => "already ended",
            };
            Ok(StopView {
                stopped: how,
                experiment: s.experiment(&name)?,
            })
        })
        .await?;
    Ok(Json(view))
}

/// Queues `name` again (from its checkpoint, or afresh) and makes sure the runner runs.
async fn requeue(
    state: AppState,
    name: String,
    afresh: bool,
) -> Result<Json<ExperimentInfo>, ApiError> {
    let st = state.clone();
    let info = state
        .with_store(move |s| {
            // Nothing is queued where nothing can run it.
            if st.exe.is_none() {
                return Err(super::experiments::no_runner());
            }
            let info = if afresh {
                s.restart_experiment(&name)?
            } else {
                s.resume_experiment(&name)?
            };
            super::experiments::start_runner(&st)?;
            Ok(info)
        })
        .await?;
    Ok(Json(info))
}

async fn experiment_resume(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<ExperimentInfo>, ApiError> {
    requeue(state, name, false).await
}

async fn experiment_restart(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<ExperimentInfo>, ApiError> {
    requeue(state, name, true).await
}

/// `POST /api/experiments/{name}/rename`.
#[derive(Debug, Deserialize)]
pub struct Rename {
    pub name: String,
}

async fn experiment_rename(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
    AppJson(req): AppJson<Rename>,
) -> Result<Json<ExperimentInfo>, ApiError> {
    Ok(Json(
        state
            .with_store(move |s| Ok(s.rename_experiment(&name, req.name.trim())?))
            .await?,
    ))
}

async fn experiment_delete(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .with_store(move |s| Ok(s.delete_experiment(&name)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn experiment_metrics(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<Vec<Event>>, ApiError> {
    Ok(Json(
        state.with_store(move |s| Ok(s.run_events(&name)?)).await?,
    ))
}

async fn experiment_logs(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> Result<Json<Vec<String>>, ApiError> {
    let n = q
        .get("tail")
        .and_then(|n| n.parse().ok())
        .unwrap_or(500usize);
    Ok(Json(
        state
            .with_store(move |s| Ok(s.run_log_tail(&name, n)?))
            .await?,
    ))
}

pub(crate) fn attachment(body: Vec<u8>, content_type: &'static str, file_name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", file_name.replace('"', "")),
            ),
        ],
        body,
    )
        .into_response()
}

async fn experiment_config(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Response, ApiError> {
    let info = state.with_store(move |s| Ok(s.experiment(&name)?)).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/yaml; charset=utf-8")],
        info.config,
    )
        .into_response())
}

async fn experiment_first_batch(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        state.with_store(move |s| Ok(s.first_batch(&name)?)).await?,
    ))
}

async fn experiment_predictions(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<Predictions>, ApiError> {
    Ok(Json(
        state.with_store(move |s| Ok(s.predictions(&name)?)).await?,
    ))
}

async fn experiment_download(
    State(state): State<AppState>,
    AppPath((name, what)): AppPath<(String, String)>,
) -> Result<Response, ApiError> {
    let artifact = Artifact::parse(&what)?;
    let file = state
        .with_store(move |s| Ok(s.artifact(&name, artifact)?))
        .await?;
    Ok(attachment(
        file.bytes,
        file.artifact.content_type(),
        &file.file_name,
    ))
}

async fn experiment_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    AppPath(name): AppPath<String>,
) -> Result<Html<String>, PageError> {
    let n = name.clone();
    let (info, events) = find_with_events(&state, name).await?;
    let artifacts = state.with_store(move |s| Ok(s.artifacts(&n)?)).await?;
    let summary = summary(&info, &events);
    let downloads = download_views(&artifacts);
    // Classification and regression get a box that scores typed text.
    let has_head = ferrotune_config::Experiment::from_yaml_str(&info.config, &info.name)
        .is_ok_and(|cfg| cfg.problem_type.has_head());
    Ok(views::page(
        &csrf,
        "experiment.html",
        minijinja::context! {
            title => format!("Experiment {}", info.name),
            nav => "experiments",
            info => minijinja::value::Serde(&info),
            config => info.config.clone(),
            summary => minijinja::value::Serde(&summary),
            downloads => minijinja::value::Serde(&downloads),
            has_head => has_head,
            gguf_types => ferrotune_store::GgufType::ALL.map(|t| t.name()).to_vec(),
        },
    )?)
}
