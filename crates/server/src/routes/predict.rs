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
        .route("/experiments/{name}/score", post(score))
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

/// `POST /api/experiments/{name}/score`: classification and regression, one typed text.
#[derive(Debug, Deserialize)]
struct ScoreBody {
    text: String,
}

/// Applies the run's model and head to the text (the model stays loaded, as for chat).
async fn score(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
    AppJson(body): AppJson<ScoreBody>,
) -> Result<Json<ferrotune_train::predict::Scored>, ApiError> {
    let n = name.clone();
    let info = state.with_store(move |s| Ok(s.experiment(&n)?)).await?;
    let cfg = ferrotune_config::Experiment::from_yaml_str(&info.config, &name)?;
    if !cfg.problem_type.has_head() {
        return Err(ApiError::bad_request(format!(
            "experiment `{name}` is `{}`: only classification and regression score a text; chat with it instead",
            cfg.problem_type
        )));
    }
    let run = ferrotune_home::RunDir::new(&info.output_dir);
    let st = state.clone();
    tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let model =
            ferrotune_train::load::TrainedModel::of_config(cfg, &run, &st.home, &Device::Cpu)?;
        let dir = model.weights_dir();
        if !dir
            .join(ferrotune_train::head::LABEL_MAPPING_FILE)
            .is_file()
        {
            return Err(ApiError::not_found(format!(
                "experiment `{name}` has no trained head yet; it is saved when training ends"
            )));
        }
        let head = ferrotune_train::head::Head::load(dir)?;
        let mut slot = st
            .scoring
            .lock()
            .map_err(|_| ApiError::internal("the model lock is poisoned"))?;
        crate::routes::chat::load(&st, &mut slot, &model)?;
        let Some(loaded) = slot.as_ref() else {
            return Err(ApiError::internal("the model did not stay loaded"));
        };
        Ok(Json(ferrotune_train::predict::score_text(
            &loaded.backbone,
            &model.config,
            &head,
            &body.text,
        )?))
    })
    .await
    .map_err(|e| ApiError::internal(format!("the scoring task failed: {e}")))?
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
