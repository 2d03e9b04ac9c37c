//! `/backbones` and `/api/backbones`: registered Hugging Face folders (and imported GGUF files) with their
//! architecture, parameters, dtype and size on disk; register a local folder; import a `.gguf`.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use ferrotune_store::BackboneEntry;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, PageError};
use crate::extract::{AppJson, AppPath};
use crate::security::Csrf;
use crate::state::AppState;
use crate::views;

pub fn api() -> Router<AppState> {
    Router::new()
        .route("/backbones", get(backbones_index).post(backbones_create))
        .route("/backbones/import-gguf", post(backbones_import_gguf))
        .route("/backbones/{name}", delete(backbones_delete))
}

pub fn pages() -> Router<AppState> {
    Router::new().route("/backbones", get(backbones_page))
}

/// A registered backbone with what its files say.
#[derive(Debug, Clone, Serialize)]
pub struct BackboneView {
    #[serde(flatten)]
    pub entry: BackboneEntry,
    /// What its files say (architecture, size, parameters, dtype).
    #[serde(flatten)]
    pub summary: ferrotune_model::FolderSummary,
    /// Why the folder cannot be read now (moved, deleted…).
    pub problem: Option<String>,
}

/// What `entry`'s folder holds (the model crate reads `config.json` and the safetensors headers), and why it
/// cannot be used now, if it cannot.
pub fn describe(entry: BackboneEntry) -> BackboneView {
    let summary = ferrotune_model::describe_folder(&entry.path);
    let problem = ferrotune_store::check_backbone_folder(&entry.path)
        .err()
        .map(|e| e.to_string());
    BackboneView {
        summary,
        problem,
        entry,
    }
}

async fn list(state: &AppState) -> Result<Vec<BackboneView>, ApiError> {
    let entries = state.with_store(|s| Ok(s.backbones()?)).await?;
    Ok(entries.into_iter().map(describe).collect())
}

async fn backbones_index(
    State(state): State<AppState>,
) -> Result<Json<Vec<BackboneView>>, ApiError> {
    Ok(Json(list(&state).await?))
}

/// `POST /api/backbones`.
#[derive(Debug, Deserialize)]
pub struct RegisterBackbone {
    pub name: String,
    pub path: PathBuf,
}

async fn backbones_create(
    State(state): State<AppState>,
    AppJson(req): AppJson<RegisterBackbone>,
) -> Result<(StatusCode, Json<BackboneView>), ApiError> {
    let path = ferrotune_config::expand_path(&req.path.display().to_string());
    let entry = state
        .with_store(move |s| Ok(s.register_backbone(req.name.trim(), &path, None)?))
        .await?;
    Ok((StatusCode::CREATED, Json(describe(entry))))
}

/// `POST /api/backbones/import-gguf`.
#[derive(Debug, Deserialize)]
pub struct ImportGguf {
    pub name: String,
    /// The `.gguf` file on this machine.
    pub file: PathBuf,
}

async fn backbones_import_gguf(
    State(state): State<AppState>,
    AppJson(req): AppJson<ImportGguf>,
) -> Result<(StatusCode, Json<BackboneView>), ApiError> {
    let name = req.name.trim().to_string();
    ferrotune_store::check_backbone_name(&name)?;
    let file = ferrotune_config::expand_path(&req.file.display().to_string());
    if !file.is_file() {
        return Err(ApiError::not_found(format!(
            "cannot find `{}`\nhelp: give the full path of a .gguf file on the server's machine",
            file.display()
        )));
    }
    let out = state.home.backbones().join(&name);
    if out.exists() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("`{}` already exists; choose another name", out.display()),
        ));
    }
    let entry = state
        .with_store(move |s| {
            if s.backbone(&name).is_ok() {
                return Err(ferrotune_store::Error::BackboneExists { name }.into());
            }
            if let Err(e) = ferrotune_model::gguf::import_gguf(&file, &out) {
                let _ = std::fs::remove_dir_all(&out);
                return Err(ApiError::bad_request(format!(
                    "cannot import `{}`: {e}",
                    file.display()
                )));
            }
            Ok(s.register_backbone(&name, &out, Some(&file))?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(describe(entry))))
}

async fn backbones_delete(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .with_store(move |s| Ok(s.unregister_backbone(&name)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn backbones_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<Csrf>,
) -> Result<Html<String>, PageError> {
    let backbones = list(&state).await?;
    Ok(views::page(
        &csrf,
        "backbones.html",
        minijinja::context! { title => "Backbones", nav => "backbones", backbones => minijinja::value::Serde(&backbones) },
    )?)
}
