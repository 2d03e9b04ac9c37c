//! `/backbones` and `/api/backbones`: registered Hugging Face folders (and imported GGUF files) with their
//! architecture, parameters, dtype and size on disk; register a local folder; import a `.gguf`.

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use ferrotune_store::BackboneEntry;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, PageError};
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
    pub architecture: Option<String>,
    pub hidden_size: Option<u64>,
    pub layers: Option<u64>,
    pub parameters: Option<u64>,
    pub dtype: Option<String>,
    pub size_bytes: u64,
    /// Why the folder cannot be read now (moved, deleted…).
    pub problem: Option<String>,
}

/// Reads `config.json` and the safetensors headers of `entry`'s folder.
pub fn describe(entry: BackboneEntry) -> BackboneView {
    let dir = entry.path.clone();
    let config: Option<serde_json::Value> = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let problem = match ferrotune_store::check_backbone_folder(&dir) {
        Ok(()) => None,
        Err(e) => Some(e.to_string()),
    };
    let get_u64 = |k: &str| config.as_ref().and_then(|c| c.get(k)?.as_u64());
    let mut parameters = 0u64;
    let mut dtype = config
        .as_ref()
        .and_then(|c| c.get("torch_dtype")?.as_str().map(String::from));
    let mut size_bytes = 0;
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = e.path();
        size_bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
        if path.extension().is_some_and(|x| x == "safetensors") {
            if let Some((n, d)) = safetensors_summary(&path) {
                parameters += n;
                dtype.get_or_insert(d);
            }
        }
    }
    BackboneView {
        architecture: config
            .as_ref()
            .and_then(|c| c.get("architectures")?.get(0)?.as_str().map(String::from)),
        hidden_size: get_u64("hidden_size"),
        layers: get_u64("num_hidden_layers"),
        parameters: (parameters > 0).then_some(parameters),
        dtype,
        size_bytes,
        problem,
        entry,
    }
}

/// The parameter count and first dtype of a safetensors file, from its header alone.
fn safetensors_summary(path: &Path) -> Option<(u64, String)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return None;
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).ok()?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).ok()?;
    let mut n = 0u64;
    // The dtype holding the most parameters (buffers such as position ids may have another).
    let mut by_dtype: std::collections::BTreeMap<String, u64> = Default::default();
    for (name, t) in &header {
        if name == "__metadata__" {
            continue;
        }
        let shape = t.get("shape")?.as_array()?;
        let count = shape.iter().filter_map(|d| d.as_u64()).product::<u64>();
        n += count;
        let dtype = t.get("dtype")?.as_str()?.to_lowercase();
        *by_dtype.entry(dtype).or_default() += count;
    }
    let dtype = by_dtype.into_iter().max_by_key(|(_, c)| *c).map(|(d, _)| d);
    Some((n, dtype.unwrap_or_default()))
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
    Json(req): Json<RegisterBackbone>,
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
    Json(req): Json<ImportGguf>,
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
    UrlPath(name): UrlPath<String>,
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
