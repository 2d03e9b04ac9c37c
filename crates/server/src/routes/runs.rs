//! One experiment: `/experiments/{name}` (tabs: charts, summary, train data, validation predictions, logs,
//! config, chat, downloads) and `/api/experiments/{name}…` (show, stop, resume, restart, rename, delete, its
//! metrics, logs, config, first batch, predictions, downloads).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use ferrotune_config::Experiment;
use ferrotune_store::{ExperimentInfo, Stopped};
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
    /// As the run logged it (`peak resident memory of the run: …`).
    pub peak_memory: Option<String>,
    /// Seconds from start to end (or to now while running).
    pub duration: Option<u64>,
}

/// Every event of `metrics.jsonl` (unreadable lines skipped: a line may be half written).
pub fn read_metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
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

/// The summary of `info`.
pub fn summary(info: &ExperimentInfo) -> Summary {
    let events = read_metrics(&info.output_dir);
    let steps: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "step").collect();
    let cfg = Experiment::from_yaml_str(&info.config, &info.name).ok();
    let settings = cfg
        .map(|cfg| {
            SUMMARY_KEYS
                .iter()
                .filter_map(|k| Some((k.to_string(), super::experiments::form_text(&cfg.get(k)?))))
                .collect()
        })
        .unwrap_or_default();
    let peak_memory = events
        .iter()
        .rev()
        .filter(|e| e["event"] == "log")
        .filter_map(|e| e["message"].as_str())
        .find_map(|m| {
            m.strip_prefix("peak resident memory of the run: ")
                .map(String::from)
        });
    let end = info.finished.unwrap_or_else(crate::state::now);
    Summary {
        settings,
        tokens_per_second: median(
            steps
                .iter()
                .filter_map(|e| e["tokens_per_second"].as_f64())
                .collect(),
        ),
        median_step_seconds: median(
            steps
                .iter()
                .filter_map(|e| e["step_seconds"].as_f64())
                .collect(),
        ),
        peak_memory,
        duration: info.started.map(|s| end.saturating_sub(s)),
    }
}

/// `GET /api/experiments/{name}`.
#[derive(Debug, Serialize)]
pub struct ExperimentView {
    #[serde(flatten)]
    pub info: ExperimentInfo,
    pub summary: Summary,
}

async fn find(state: &AppState, name: String) -> Result<ExperimentInfo, ApiError> {
    state.with_store(move |s| Ok(s.experiment(&name)?)).await
}

async fn experiment_show(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<ExperimentView>, ApiError> {
    let info = find(&state, name).await?;
    let summary = summary(&info);
    Ok(Json(ExperimentView { info, summary }))
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
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let info = find(&state, name).await?;
    Ok(Json(read_metrics(&info.output_dir)))
}

async fn experiment_logs(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> Result<Json<Vec<String>>, ApiError> {
    let info = find(&state, name).await?;
    let n = q
        .get("tail")
        .and_then(|n| n.parse().ok())
        .unwrap_or(500usize);
    Ok(Json(ferrotune_store::tracking::last_lines(
        &info.output_dir.join("logs.log"),
        n,
    )))
}

fn attachment(body: Vec<u8>, content_type: &'static str, file_name: &str) -> Response {
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
    let info = find(&state, name).await?;
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
    let info = find(&state, name.clone()).await?;
    let path = info.output_dir.join("first_batch.json");
    let text = std::fs::read_to_string(&path).map_err(|_| {
        ApiError::not_found(format!(
            "experiment `{name}` has no first batch yet (it is written when training starts)"
        ))
    })?;
    serde_json::from_str(&text)
        .map(Json)
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))
}

/// The validation predictions table.
#[derive(Debug, Serialize)]
pub struct Predictions {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

async fn experiment_predictions(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<Predictions>, ApiError> {
    let info = find(&state, name.clone()).await?;
    let path = info.output_dir.join("validation_predictions.csv");
    if !path.is_file() {
        return Err(ApiError::not_found(format!(
            "experiment `{name}` has no validation predictions yet (written by the final evaluation)"
        )));
    }
    let table = ferrotune_data::read_table(&path).map_err(|e| ApiError::internal(e.to_string()))?;
    let rows = (0..table.len())
        .map(|r| {
            (0..table.columns.len())
                .map(|c| table.text(r, c).to_string())
                .collect()
        })
        .collect();
    Ok(Json(Predictions {
        columns: table.columns,
        rows,
    }))
}

/// The adapter folder as a zip archive, in memory (adapters are megabytes).
fn zip_folder(dir: &Path) -> Result<Vec<u8>, ApiError> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?
            .flatten()
            .filter(|e| e.path().is_file())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(e.path())
                .map_err(|err| ApiError::internal(format!("{}: {err}", e.path().display())))?;
            zip.start_file(format!("adapter/{name}"), options)
                .and_then(|_| zip.write_all(&bytes).map_err(Into::into))
                .map_err(|err| ApiError::internal(err.to_string()))?;
        }
        zip.finish()
            .map_err(|err| ApiError::internal(err.to_string()))?;
    }
    Ok(out.into_inner())
}

async fn experiment_download(
    State(state): State<AppState>,
    AppPath((name, what)): AppPath<(String, String)>,
) -> Result<Response, ApiError> {
    let info = find(&state, name.clone()).await?;
    let dir = info.output_dir.clone();
    let missing =
        |what: &str| ApiError::not_found(format!("experiment `{name}` has no {what} yet"));
    let read = |file: &str| std::fs::read(dir.join(file));
    match what.as_str() {
        "config" => Ok(attachment(
            info.config.into_bytes(),
            "text/yaml; charset=utf-8",
            &format!("{name}.yaml"),
        )),
        "logs" => Ok(attachment(
            read("logs.log").map_err(|_| missing("log"))?,
            "text/plain; charset=utf-8",
            &format!("{name}-logs.log"),
        )),
        "predictions" => Ok(attachment(
            read("validation_predictions.csv").map_err(|_| missing("validation predictions"))?,
            "text/csv; charset=utf-8",
            &format!("{name}-validation_predictions.csv"),
        )),
        "adapter" => {
            let adapter = dir.join("adapter");
            if !adapter.join("adapter_config.json").is_file() {
                return Err(missing("adapter (it is saved when training ends)"));
            }
            let bytes = tokio::task::spawn_blocking(move || zip_folder(&adapter))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            Ok(attachment(
                bytes,
                "application/zip",
                &format!("{name}-adapter.zip"),
            ))
        }
        other => Err(ApiError::not_found(format!(
            "no download `{other}`; there are config, logs, predictions and adapter"
        ))),
    }
}

async fn experiment_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    AppPath(name): AppPath<String>,
) -> Result<Html<String>, PageError> {
    let info = find(&state, name).await?;
    let summary = summary(&info);
    let has_adapter = info
        .output_dir
        .join("adapter/adapter_config.json")
        .is_file();
    Ok(views::page(
        &csrf,
        "experiment.html",
        minijinja::context! {
            title => format!("Experiment {}", info.name),
            nav => "experiments",
            info => minijinja::value::Serde(&info),
            config => info.config.clone(),
            summary => minijinja::value::Serde(&summary),
            has_adapter => has_adapter,
        },
    )?)
}
