//! Every route: the JSON API under `/api/` (one module per resource) and the pages that call it.

mod backbones;
mod chat;
mod dataset_pages;
mod datasets;
mod experiments;
pub(crate) mod exports;
mod home;
mod live;
pub(crate) mod openai;
mod predict;
mod runs;
mod settings;

use axum::extract::{DefaultBodyLimit, NestedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::{ApiError, InternalDetails, PageError};
use crate::security;
use crate::state::AppState;
use crate::views;

/// The whole application. An unknown route or method answers like the rest: JSON under `/api/`, a page elsewhere.
pub(crate) fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(home::api())
        .merge(settings::api())
        .merge(backbones::api())
        .merge(datasets::api())
        .merge(experiments::api())
        .merge(runs::api())
        .merge(live::api())
        .merge(chat::api())
        .merge(predict::api())
        .merge(exports::api())
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_method_not_allowed);
    // Apart from the API, so that their fallbacks stay their own.
    let pages = Router::new()
        .merge(home::pages())
        .merge(settings::pages())
        .merge(backbones::pages())
        .merge(dataset_pages::pages())
        .merge(experiments::pages())
        .route(
            "/login",
            get(security::login_page).post(security::login_submit),
        )
        .route("/static/app.js", get(views::script))
        .route("/static/style.css", get(views::style))
        .route("/static/favicon.svg", get(views::favicon))
        .route("/favicon.ico", get(views::favicon))
        .fallback(page_not_found)
        .method_not_allowed_fallback(page_method_not_allowed);
    Router::new()
        .nest("/api", api)
        .nest("/v1", openai::router())
        .merge(pages)
        // Uploads are streamed to disk and counted against the studio's own limit.
        .layer(DefaultBodyLimit::disable())
        .layer(from_fn_with_state(state.clone(), security::guard))
        .layer(from_fn_with_state(state.clone(), log_internal_errors))
        .with_state(state)
}

/// Only the OpenAI-compatible API (`ferrotune serve --api-only`): `/v1`, with the same authentication.
pub(crate) fn api_only_router(state: AppState) -> Router {
    Router::new()
        .nest("/v1", openai::router())
        .fallback(openai::outside_v1)
        .layer(from_fn_with_state(state.clone(), security::guard))
        .layer(from_fn_with_state(state.clone(), log_internal_errors))
        .with_state(state)
}

/// `METHOD /api/path` of a request routed to the API (whose router sees the path without `/api`).
fn api_route(nested: &NestedPath, request: &Request) -> String {
    format!(
        "{} {}{}",
        request.method(),
        nested.as_str(),
        security::urldecode(request.uri().path())
    )
}

async fn api_not_found(nested: NestedPath, request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no API route `{}`\nhelp: docs/api.md lists them",
        api_route(&nested, &request)
    ))
}

async fn api_method_not_allowed(nested: NestedPath, request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "no API route `{}`: the path takes other methods\nhelp: the `Allow` header lists them; docs/api.md lists every route",
            api_route(&nested, &request)
        ),
    )
}

async fn page_not_found(request: Request) -> PageError {
    PageError(ApiError::not_found(format!(
        "there is no page `{}`",
        security::urldecode(request.uri().path())
    )))
}

async fn page_method_not_allowed(request: Request) -> PageError {
    PageError(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "`{} {}` is not something this page does",
            request.method(),
            security::urldecode(request.uri().path())
        ),
    ))
}

/// Writes the details of internal errors to `server.log` (the response carries only a request id). Errors sent
/// inside an event stream (chat) are logged where they happen, with [`AppState::log_error`].
async fn log_internal_errors(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let what = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    if let Some(InternalDetails(details)) = response.extensions().get::<InternalDetails>() {
        state.log(&format!("{what}: {details}"));
    }
    response.into_response()
}
