//! One error type for the API ([`ApiError`], JSON) and its page form ([`PageError`], HTML). User errors keep the
//! library's message (and the setting it is about); internal ones get a request id while the details go to
//! `server.log` (see [`crate::routes::log_internal_errors`]), never a stack trace.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use ferrotune_config::Issue;
use serde::Serialize;

/// An error answered by the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Per-setting problems (422 from experiment validation).
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
    /// Details for `server.log` (internal errors only).
    internal: Option<String>,
}

/// The details of an internal error, handed to the logging middleware in the response's extensions.
#[derive(Debug, Clone)]
pub struct InternalDetails(pub String);

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "<[Issue]>::is_empty")]
    errors: &'a [Issue],
    #[serde(skip_serializing_if = "<[Issue]>::is_empty")]
    warnings: &'a [Issue],
}

impl ApiError {
    /// A client error with `status` and a readable message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            errors: Vec::new(),
            warnings: Vec::new(),
            internal: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// Settings that do not validate: 422 with each problem beside its key.
    pub fn invalid(errors: Vec<Issue>, warnings: Vec<Issue>) -> ApiError {
        let message = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message,
            errors,
            warnings,
            internal: None,
        }
    }

    /// A failure that is not the user's: the page shows a request id, `server.log` the details.
    pub fn internal(details: impl Into<String>) -> ApiError {
        let id = crate::security::random_hex(6);
        let details = details.into();
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("internal error (request {id}); the details are in server.log in the ferrotune home"),
            errors: Vec::new(),
            warnings: Vec::new(),
            internal: Some(format!("request {id}: {details}")),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ferrotune_store::Error> for ApiError {
    fn from(e: ferrotune_store::Error) -> Self {
        use ferrotune_store::Error as E;
        let status = match &e {
            E::Io { .. } | E::Sqlite { .. } | E::Spawn { .. } | E::Signal { .. } => {
                return ApiError::internal(e.to_string())
            }
            E::DatasetNotFound { .. }
            | E::ExperimentNotFound { .. }
            | E::BackboneNotFound { .. }
            | E::InputNotFound { .. } => StatusCode::NOT_FOUND,
            E::DatasetExists { .. }
            | E::ExperimentExists { .. }
            | E::BackboneExists { .. }
            | E::ExperimentFolderExists { .. }
            | E::WrongStatus { .. } => StatusCode::CONFLICT,
            E::InvalidSettings { .. } | E::Config(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<ferrotune_config::Error> for ApiError {
    fn from(e: ferrotune_config::Error) -> Self {
        match e {
            ferrotune_config::Error::Settings { issues, .. } => {
                ApiError::invalid(issues, Vec::new())
            }
            other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
        }
    }
}

impl From<ferrotune_model::Error> for ApiError {
    fn from(e: ferrotune_model::Error) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<ferrotune_data::Error> for ApiError {
    fn from(e: ferrotune_data::Error) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<ferrotune_train::Error> for ApiError {
    fn from(e: ferrotune_train::Error) -> Self {
        use ferrotune_train::Error as E;
        match e {
            E::Setting(_) | E::NonFiniteLoss { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            E::Model(m) => (*m).into(),
            E::Data(d) => (*d).into(),
            E::Checkpoint { .. } | E::Io { .. } | E::DemoBackbone(_) | E::Candle(_) => {
                ApiError::internal(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: &self.message,
            errors: &self.errors,
            warnings: &self.warnings,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(details) = self.internal {
            response.extensions_mut().insert(InternalDetails(details));
        }
        response
    }
}

/// An error answered as a page (the same message, in the studio's layout).
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        let html = crate::views::render(
            "error.html",
            minijinja::context! { title => "Error", status => e.status.as_u16(), message => e.message },
        )
        .unwrap_or_else(|_| "error".into());
        let mut response = (e.status, Html(html)).into_response();
        if let Some(details) = e.internal {
            response.extensions_mut().insert(InternalDetails(details));
        }
        response
    }
}
