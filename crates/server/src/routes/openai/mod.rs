//! `/v1`: the OpenAI-compatible API — `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions` —
//! answered by the engine that also answers the studio's chat, with OpenAI's request fields, response and chunk
//! shapes and error shape (`{"error": {"message", "type", "param", "code"}}`). A model id is a finished
//! experiment's name (its backbone with its adapter, or its fully fine-tuned model) or a registered backbone's
//! name; `ferrotune serve --model PATH --adapter NAME=DIR` serves those instead ([`ServedModels`]).

mod request;
mod respond;

use std::path::PathBuf;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferrotune_config::{Experiment, ProblemType};
use ferrotune_engine::{ModelSpec, WeightFormat};
use ferrotune_home::{RunDir, RunStatus};
use ferrotune_model::{DType, Device};
use serde_json::{json, Value};

use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/models", get(models_list))
        .route("/chat/completions", post(respond::chat_completions))
        .route("/completions", post(respond::completions))
        .fallback(not_found)
}

/// Models served from paths, without a home (`ferrotune serve --model PATH [--adapter NAME=DIR …]`).
#[derive(Debug, Clone)]
pub struct ServedModels {
    /// The backbone's id (its folder or file name).
    pub base_name: String,
    pub base: PathBuf,
    pub format: WeightFormat,
    /// `(id, PEFT adapter folder)`.
    pub adapters: Vec<(String, PathBuf)>,
}

/// An error in OpenAI's shape.
#[derive(Debug, Clone)]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<String>,
    code: Option<&'static str>,
}

impl OpenAiError {
    /// 400 `invalid_request_error` naming `param`.
    pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> OpenAiError {
        OpenAiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.into()),
            code: None,
        }
    }

    pub(crate) fn with_code(mut self, code: &'static str) -> OpenAiError {
        self.code = Some(code);
        self
    }

    pub(crate) fn new(
        status: StatusCode,
        kind: &'static str,
        message: impl Into<String>,
    ) -> OpenAiError {
        OpenAiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    fn model_not_found(id: &str) -> OpenAiError {
        OpenAiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "the model `{id}` does not exist: `GET /v1/models` lists the finished experiments and backbones served here"
            ),
            kind: "invalid_request_error",
            param: Some("model".into()),
            code: Some("model_not_found"),
        }
    }

    /// 401 for a missing or wrong bearer token.
    pub(crate) fn unauthorized() -> OpenAiError {
        OpenAiError {
            status: StatusCode::UNAUTHORIZED,
            message: "this server needs its access token: send `Authorization: Bearer TOKEN` (the token `ferrotune serve` printed)".into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }
}

impl From<ferrotune_engine::EngineError> for OpenAiError {
    fn from(e: ferrotune_engine::EngineError) -> Self {
        match e {
            ferrotune_engine::EngineError::QueueFull { .. } => OpenAiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: e.to_string(),
                kind: "rate_limit_error",
                param: None,
                code: Some("rate_limit_exceeded"),
            },
            ferrotune_engine::EngineError::Stopped => OpenAiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.to_string(),
            ),
        }
    }
}

impl From<ferrotune_engine::Failure> for OpenAiError {
    fn from(f: ferrotune_engine::Failure) -> Self {
        if f.bad_request {
            let code = f
                .message
                .contains("context holds")
                .then_some("context_length_exceeded");
            OpenAiError {
                status: StatusCode::BAD_REQUEST,
                message: f.message,
                kind: "invalid_request_error",
                param: code.map(|_| "messages".into()),
                code,
            }
        } else {
            OpenAiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", f.message)
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

async fn not_found(request: axum::extract::Request) -> OpenAiError {
    OpenAiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!(
            "no route `{} /v1{}`: the API has GET /v1/models, POST /v1/chat/completions and POST /v1/completions (docs/api.md)",
            request.method(),
            request.uri().path()
        ),
    )
    .with_code("unknown_url")
}

/// Any path outside `/v1` of an API-only server.
pub(crate) async fn outside_v1(request: axum::extract::Request) -> OpenAiError {
    OpenAiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!(
            "no route `{} {}`: this server answers only the OpenAI-compatible API under /v1 (started with --api-only)",
            request.method(),
            request.uri().path()
        ),
    )
    .with_code("unknown_url")
}

/// One entry of `/v1/models`.
struct ModelEntry {
    id: String,
    created: u64,
}

/// Every model id served: the served paths, or the home's finished experiments (that generate text) and its
/// backbones.
async fn model_entries(state: &AppState) -> Result<Vec<ModelEntry>, OpenAiError> {
    if let Some(served) = &state.served {
        let mut out = vec![ModelEntry {
            id: served.base_name.clone(),
            created: 0,
        }];
        out.extend(served.adapters.iter().map(|(id, _)| ModelEntry {
            id: id.clone(),
            created: 0,
        }));
        return Ok(out);
    }
    state
        .with_store(|s| {
            let mut out = Vec::new();
            for e in s.experiments()? {
                let generates = Experiment::from_yaml_str(&e.config, &e.name)
                    .is_ok_and(|c| generates_text(c.problem_type));
                if e.status == RunStatus::Finished && generates {
                    out.push(ModelEntry {
                        id: e.name,
                        created: e.finished.unwrap_or(e.created),
                    });
                }
            }
            for b in s.backbones()? {
                out.push(ModelEntry {
                    id: b.name,
                    created: b.added,
                });
            }
            Ok(out)
        })
        .await
        .map_err(|e| OpenAiError::new(e.status, "server_error", e.message))
}

/// Whether experiments of this problem type answer with text (a head scores instead).
fn generates_text(problem: ProblemType) -> bool {
    matches!(
        problem,
        ProblemType::TextCausalLanguageModeling | ProblemType::TextDpoModeling
    )
}

async fn models_list(State(state): State<AppState>) -> Result<Json<Value>, OpenAiError> {
    let data: Vec<Value> = model_entries(&state)
        .await?
        .into_iter()
        .map(|m| json!({ "id": m.id, "object": "model", "created": m.created, "owned_by": "ferrotune" }))
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

/// What answers model `id`.
pub(crate) async fn resolve(state: &AppState, id: &str) -> Result<ModelSpec, OpenAiError> {
    if let Some(served) = &state.served {
        if id == served.base_name {
            return Ok(ModelSpec {
                backbone: served.base.clone(),
                format: served.format,
                adapter: None,
            });
        }
        return match served.adapters.iter().find(|(name, _)| name == id) {
            Some((_, dir)) => Ok(ModelSpec {
                backbone: served.base.clone(),
                format: served.format,
                adapter: Some(dir.clone()),
            }),
            None => Err(OpenAiError::model_not_found(id)),
        };
    }
    let name = id.to_string();
    let st = state.clone();
    state
        .with_store(move |s| {
            if let Ok(e) = s.experiment(&name) {
                let cfg = Experiment::from_yaml_str(&e.config, &e.name)?;
                if e.status == RunStatus::Finished && generates_text(cfg.problem_type) {
                    let run = RunDir::new(&e.output_dir);
                    let model = ferrotune_train::load::TrainedModel::of_config(
                        cfg,
                        &run,
                        &st.home,
                        &Device::Cpu,
                    )?;
                    return Ok(Some(ModelSpec {
                        backbone: model.backbone,
                        format: model.format,
                        adapter: model.adapter,
                    }));
                }
                return Ok(None);
            }
            Ok(s.backbone(&name).ok().map(|b| ModelSpec {
                backbone: b.path,
                format: DType::F32.into(),
                adapter: None,
            }))
        })
        .await
        .map_err(|e| OpenAiError::new(e.status, "server_error", e.message))?
        .ok_or_else(|| OpenAiError::model_not_found(id))
}
