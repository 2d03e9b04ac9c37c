//! Extractors that reject like the rest of the studio: axum's own answer a malformed body, path or query in
//! plain text, these answer `{"error": …}` under `/api/` (docs/api.md) and the error page elsewhere.
//!
//! [`AppJson`] and [`AppMultipart`] are API-only and reject with an [`ApiError`]; [`AppPath`], [`AppQuery`] and
//! [`AppForm`] serve pages too, so they answer in the form of the route that was called.

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Multipart, NestedPath, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, PageError};

/// A JSON request body (as `axum::Json`).
#[derive(Debug, Clone)]
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(AppJson(value))
    }
}

/// A `multipart/form-data` body (as `axum::extract::Multipart`).
pub struct AppMultipart(pub Multipart);

impl<S: Send + Sync> FromRequest<S> for AppMultipart {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Ok(AppMultipart(Multipart::from_request(request, state).await?))
    }
}

/// The route's path parameters (as `axum::extract::Path`).
#[derive(Debug, Clone)]
pub struct AppPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for AppPath<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(AppPath(value)),
            Err(rejection) => Err(answer(&parts.extensions, rejection.into())),
        }
    }
}

/// The query string (as `axum::extract::Query`).
#[derive(Debug, Clone)]
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(AppQuery(value)),
            Err(rejection) => Err(answer(&parts.extensions, rejection.into())),
        }
    }
}

/// A URL-encoded form body (as `axum::Form`).
#[derive(Debug, Clone)]
pub struct AppForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let api = is_api(request.extensions());
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(AppForm(value)),
            Err(rejection) => Err(answer_as(api, rejection.into())),
        }
    }
}

/// Whether the request is routed to the API (the one router nested under `/api`).
fn is_api(extensions: &Extensions) -> bool {
    extensions
        .get::<NestedPath>()
        .is_some_and(|n| n.as_str() == "/api")
}

fn answer(extensions: &Extensions, error: ApiError) -> Response {
    answer_as(is_api(extensions), error)
}

fn answer_as(api: bool, error: ApiError) -> Response {
    if api {
        error.into_response()
    } else {
        PageError(error).into_response()
    }
}

/// A rejection's status with our message: a client error as it is, a server-side one (axum's own
/// misconfiguration, e.g. path parameters missing) as an internal error.
fn rejected(status: StatusCode, message: String) -> ApiError {
    if status.is_server_error() {
        ApiError::internal(message)
    } else {
        ApiError::new(status, message)
    }
}

/// What went wrong inside a rejection (serde's message with the field's path), without axum's prefix.
fn cause(e: &dyn std::error::Error) -> String {
    e.source().map_or_else(|| e.to_string(), |s| s.to_string())
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let message = match &rejection {
            JsonRejection::JsonDataError(e) => format!(
                "the JSON body does not fit this route: {}\nhelp: docs/api.md lists each route's fields and their types",
                cause(e)
            ),
            JsonRejection::JsonSyntaxError(e) => format!(
                "the body is not valid JSON: {}\nhelp: send one JSON object, as docs/api.md shows for this route",
                cause(e)
            ),
            JsonRejection::MissingJsonContentType(_) => {
                "the body must be JSON\nhelp: send the header `Content-Type: application/json`".into()
            }
            JsonRejection::BytesRejection(e) => {
                format!("cannot read the request body: {}", cause(e))
            }
            // The enum is `#[non_exhaustive]`: a rejection axum adds later keeps its own status and text.
            other => other.body_text(),
        };
        rejected(status, message)
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(rejection: MultipartRejection) -> Self {
        let status = rejection.status();
        let message = match &rejection {
            MultipartRejection::InvalidBoundary(_) => {
                "the upload must be `multipart/form-data` with a boundary\nhelp: send the file as multipart field `file`".into()
            }
            other => other.body_text(),
        };
        rejected(status, message)
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        let status = rejection.status();
        let message = match &rejection {
            PathRejection::FailedToDeserializePathParams(e) => {
                format!("the path does not fit this route: {}", cause(e))
            }
            other => other.body_text(),
        };
        rejected(status, message)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let status = rejection.status();
        let message = match &rejection {
            QueryRejection::FailedToDeserializeQueryString(e) => format!(
                "the query string does not fit this route: {}\nhelp: docs/api.md lists each route's parameters",
                cause(e)
            ),
            other => other.body_text(),
        };
        rejected(status, message)
    }
}

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        let status = rejection.status();
        let message = match &rejection {
            FormRejection::InvalidFormContentType(_) => {
                "the form must be sent as `application/x-www-form-urlencoded`".into()
            }
            FormRejection::FailedToDeserializeForm(e) => {
                format!("the form does not fit: {}", cause(e))
            }
            FormRejection::FailedToDeserializeFormBody(e) => {
                format!("the form does not fit: {}", cause(e))
            }
            FormRejection::BytesRejection(e) => {
                format!("cannot read the request body: {}", cause(e))
            }
            other => other.body_text(),
        };
        rejected(status, message)
    }
}
