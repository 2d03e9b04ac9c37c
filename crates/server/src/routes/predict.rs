//! The experiment page's Predict panel: `POST /api/experiments/{name}/predict` with `{"upload": ID}` (a file
//! staged by `POST /api/uploads`) applies the run's model to it (`ferrotune_train::predict`, the engine of
//! `ferrotune predict`) and answers when the CSV is written; `GET /api/experiments/{name}/predict/{file}`
//! downloads it. The outputs stay in the run folder's `predict/`.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use ferrotune_model::Device;
use ferrotune_train::predict::{predict, PredictRequest};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{AppJson, AppPath};
use crate::routes::datasets::{safe_file_name, upload_path};
use crate::routes::runs::attachment;
use crate::state::AppState;

pub fn api() -> Router<AppState> {
    Router::new()
        .route("/experiments/{name}/predict", post(predict_create))
        .route("/experiments/{name}/predict/{file}", get(predict_download))
}

/// `POST /api/experiments/{name}/predict`.
#[derive(Debug, Deserialize)]
struct PredictBody {
    upload: String,
}

/// What a prediction wrote.
#[derive(Debug, Serialize)]
struct Predicted {
    file: String,
    rows: usize,
    seconds: f64,
    tokens: usize,
    /// Where to download it.
    download: String,
}

async fn predict_create(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
    AppJson(body): AppJson<PredictBody>,
) -> Result<Json<Predicted>, ApiError> {
    let input = upload_path(&state, &body.upload)?;
    let run = {
        let name = name.clone();
        state.with_store(move |s| Ok(s.run_dir(&name)?)).await?
    };
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = format!("{}.predictions.csv", safe_file_name(&stem));
    let dir = run.predict_dir();
    let output = dir.join(&file);
    let home = state.home.clone();
    let summary = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
        let request = PredictRequest {
            run: &run,
            home: &home,
            input: &input,
            output: &output,
            batch_size: 8,
            device: &Device::Cpu,
        };
        let summary = predict(&request, &mut |_, _| {})?;
        // The staged upload has served its purpose.
        if let Some(folder) = input.parent() {
            let _ = std::fs::remove_dir_all(folder);
        }
        Ok(summary)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the prediction task failed: {e}")))??;
    Ok(Json(Predicted {
        download: format!("/api/experiments/{name}/predict/{file}"),
        file,
        rows: summary.rows,
        seconds: summary.seconds,
        tokens: summary.tokens,
    }))
}

async fn predict_download(
    State(state): State<AppState>,
    AppPath((name, file)): AppPath<(String, String)>,
) -> Result<Response, ApiError> {
    if safe_file_name(&file) != file || !file.ends_with(".predictions.csv") {
        return Err(ApiError::bad_request(format!(
            "`{file}` is not a predictions file; the Predict panel names its downloads `<input>.predictions.csv`"
        )));
    }
    let run = state.with_store(move |s| Ok(s.run_dir(&name)?)).await?;
    let path = run.predict_dir().join(&file);
    let bytes = tokio::fs::read(&path).await.map_err(|_| {
        ApiError::not_found(format!(
            "no predictions `{file}` for this experiment; predict a file first"
        ))
    })?;
    Ok(attachment(bytes, "text/csv; charset=utf-8", &file))
}
