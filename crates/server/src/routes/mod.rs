//! Every route: the JSON API under `/api/` (one module per resource) and the pages that call it.

pub mod backbones;
pub mod chat;
pub mod dataset_pages;
pub mod datasets;
pub mod experiments;
pub mod home;
pub mod live;
pub mod runs;
pub mod settings;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::{ApiError, InternalDetails, PageError};
use crate::security;
use crate::state::AppState;
use crate::views;

/// The whole application.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(home::api())
        .merge(settings::api())
        .merge(backbones::api())
        .merge(datasets::api())
        .merge(experiments::api())
        .merge(runs::api())
        .merge(live::api())
        .merge(chat::api())
        .fallback(api_not_found);
    Router::new()
        .nest("/api", api)
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
        .fallback(page_not_found)
        // Uploads are streamed to disk and counted against the studio's own limit.
        .layer(DefaultBodyLimit::disable())
        .layer(from_fn_with_state(state.clone(), security::guard))
        .layer(from_fn_with_state(state.clone(), log_internal_errors))
        .with_state(state)
}

async fn api_not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no API route `{} {}`; docs/api.md lists them",
        request.method(),
        request.uri().path()
    ))
}

async fn page_not_found(request: Request) -> PageError {
    PageError(ApiError::not_found(format!(
        "there is no page `{}`",
        security::urldecode(request.uri().path())
    )))
}

/// Writes the details of internal errors to `server.log` (the response carries only a request id).
pub async fn log_internal_errors(
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
