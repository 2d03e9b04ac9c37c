//! `/api/datasets…` and `/api/uploads`: upload (streamed to `uploads/<id>/`, size-limited) or a local path, a
//! preview with a guessed mapping, import, list, rows, edit the mapping, delete. The pages are in
//! [`super::dataset_pages`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ferrotune_store::{CanonicalRow, DatasetInfo, Mapping, Shape, Split};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;
use crate::extract::{AppJson, AppMultipart, AppPath, AppQuery};
use crate::security::random_hex;
use crate::state::AppState;

pub fn api() -> Router<AppState> {
    Router::new()
        .route("/uploads", post(uploads_create))
        .route("/datasets", get(datasets_index).post(datasets_create))
        .route("/datasets/preview", post(datasets_preview))
        .route(
            "/datasets/{name}",
            get(datasets_show).delete(datasets_delete),
        )
        .route("/datasets/{name}/rows", get(datasets_rows))
        .route("/datasets/{name}/mapping", put(datasets_remap))
}

/// A staged upload.
#[derive(Debug, Serialize)]
pub struct Upload {
    /// Pass this as `upload` to preview and import.
    pub upload: String,
    pub file: String,
    pub bytes: u64,
}

/// Keeps the name's last component, in letters, digits, `-`, `_` and `.`; never `..` or a hidden file.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.').to_string();
    if clean.is_empty() {
        "upload".into()
    } else {
        clean
    }
}

pub(crate) fn upload_path(state: &AppState, id: &str) -> Result<PathBuf, ApiError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!(
            "`{id}` is not an upload id; upload the file first (`POST /api/uploads`)"
        )));
    }
    let dir = state.home.root().join("uploads").join(id);
    let file = std::fs::read_dir(&dir)
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path())));
    file.ok_or_else(|| {
        ApiError::not_found(format!(
            "upload `{id}` is gone (imported or never finished); upload the file again"
        ))
    })
}

async fn uploads_create(
    State(state): State<AppState>,
    AppMultipart(mut multipart): AppMultipart,
) -> Result<(StatusCode, Json<Upload>), ApiError> {
    let limit = state.settings().max_upload_mb * 1024 * 1024;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("the upload is malformed: {e}")))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let name = safe_file_name(field.file_name().unwrap_or("upload"));
        let id = random_hex(8);
        let dir = state.home.root().join("uploads").join(&id);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
        let path = dir.join(&name);
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
        let mut bytes = 0u64;
        let failed = |dir: &Path| {
            let _ = std::fs::remove_dir_all(dir);
        };
        loop {
            let chunk = match field.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    failed(&dir);
                    return Err(ApiError::bad_request(format!(
                        "the upload of `{name}` broke off: {e}"
                    )));
                }
            };
            bytes += chunk.len() as u64;
            if bytes > limit {
                failed(&dir);
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "`{name}` is larger than the upload limit of {} MiB\nhelp: raise it on the Settings page, or import the file by its local path",
                        limit >> 20
                    ),
                ));
            }
            if let Err(e) = out.write_all(&chunk).await {
                failed(&dir);
                return Err(ApiError::internal(format!("{}: {e}", path.display())));
            }
        }
        if let Err(e) = out.flush().await {
            failed(&dir);
            return Err(ApiError::internal(format!("{}: {e}", path.display())));
        }
        return Ok((
            StatusCode::CREATED,
            Json(Upload {
                upload: id,
                file: name,
                bytes,
            }),
        ));
    }
    Err(ApiError::bad_request(
        "the upload has no `file` field; send the file as multipart field `file`",
    ))
}

/// Where data comes from: a staged upload or a path on this machine.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Source {
    #[serde(default)]
    pub upload: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

impl Source {
    fn resolve(&self, state: &AppState) -> Result<PathBuf, ApiError> {
        match (&self.upload, &self.path) {
            (Some(id), _) if !id.is_empty() => upload_path(state, id),
            (_, Some(p)) if !p.trim().is_empty() => Ok(ferrotune_config::expand_path(p.trim())),
            _ => Err(ApiError::bad_request(
                "name the data: an `upload` id or a local `path`",
            )),
        }
    }
}

async fn datasets_preview(
    State(state): State<AppState>,
    AppJson(source): AppJson<Source>,
) -> Result<Json<ferrotune_store::Preview>, ApiError> {
    let path = source.resolve(&state)?;
    let preview = state
        .with_store(move |s| Ok(s.preview_import(&path, 5)?))
        .await?;
    Ok(Json(preview))
}

/// The mapping as the form sends it (empty strings mean "recognise it").
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MappingForm {
    #[serde(default)]
    pub shape: String,
    #[serde(default)]
    pub prompt: Vec<String>,
    #[serde(default)]
    pub answer: String,
    #[serde(default)]
    pub system: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub parent_id: String,
    /// Preference pairs: the rejected answer column.
    #[serde(default)]
    pub rejected: String,
}

impl MappingForm {
    fn mapping(&self) -> Result<Mapping, ApiError> {
        let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let shape = match opt(&self.shape) {
            None => None,
            Some(s) => Some(Shape::from_name(&s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown layout `{s}`; use one of {}",
                    Shape::names()
                ))
            })?),
        };
        Ok(Mapping {
            shape,
            prompt: self
                .prompt
                .iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            answer: opt(&self.answer),
            system: opt(&self.system),
            id: opt(&self.id),
            parent_id: opt(&self.parent_id),
            rejected: opt(&self.rejected),
        })
    }
}

/// `POST /api/datasets`.
#[derive(Debug, Deserialize)]
pub struct CreateDataset {
    pub name: String,
    #[serde(flatten)]
    pub source: Source,
    #[serde(default)]
    pub validation: Option<Source>,
    #[serde(default)]
    pub mapping: MappingForm,
}

async fn datasets_create(
    State(state): State<AppState>,
    AppJson(req): AppJson<CreateDataset>,
) -> Result<(StatusCode, Json<DatasetInfo>), ApiError> {
    let train = req.source.resolve(&state)?;
    let validation = match &req.validation {
        Some(v)
            if v.upload.is_some() || v.path.as_deref().is_some_and(|p| !p.trim().is_empty()) =>
        {
            Some(v.resolve(&state)?)
        }
        _ => None,
    };
    let mapping = req.mapping.mapping()?;
    let name = req.name.trim().to_string();
    let uploads: Vec<String> = [Some(&req.source), req.validation.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|s| s.upload.clone())
        .collect();
    let info = state
        .with_store(move |s| {
            Ok(s.import_dataset(&ferrotune_store::ImportOptions {
                name,
                train,
                validation,
                mapping,
            })?)
        })
        .await?;
    for id in uploads {
        let _ = std::fs::remove_dir_all(state.home.root().join("uploads").join(id));
    }
    Ok((StatusCode::CREATED, Json(info)))
}

async fn datasets_index(State(state): State<AppState>) -> Result<Json<Vec<DatasetInfo>>, ApiError> {
    Ok(Json(state.with_store(|s| Ok(s.datasets()?)).await?))
}

async fn datasets_show(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<DatasetInfo>, ApiError> {
    Ok(Json(
        state.with_store(move |s| Ok(s.dataset(&name)?)).await?,
    ))
}

fn split_of(q: &HashMap<String, String>) -> Result<Split, ApiError> {
    match q.get("split").map(String::as_str) {
        None | Some("train") => Ok(Split::Train),
        Some("validation") => Ok(Split::Validation),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown split `{other}`; use train or validation"
        ))),
    }
}

async fn datasets_rows(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> Result<Json<Vec<CanonicalRow>>, ApiError> {
    let split = split_of(&q)?;
    let n = q
        .get("n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(20usize)
        .min(1000);
    Ok(Json(
        state
            .with_store(move |s| Ok(s.sample(&name, split, n)?))
            .await?,
    ))
}

async fn datasets_remap(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
    AppJson(form): AppJson<MappingForm>,
) -> Result<Json<DatasetInfo>, ApiError> {
    let mapping = form.mapping()?;
    Ok(Json(
        state
            .with_store(move |s| Ok(s.remap_dataset(&name, &mapping)?))
            .await?,
    ))
}

async fn datasets_delete(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .with_store(move |s| Ok(s.delete_dataset(&name)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_cannot_climb_out_of_their_folder() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("..\\..\\x.csv"), "x.csv");
        assert_eq!(safe_file_name(".."), "upload");
        assert_eq!(safe_file_name(".bashrc"), "bashrc");
        assert_eq!(safe_file_name("my data (1).csv"), "my_data__1_.csv");
    }
}
