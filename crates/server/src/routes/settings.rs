//! `/settings` and `GET|PUT /api/settings`: defaults for new experiments, limits, where the data lives.

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Extension, Json, Router};

use crate::error::{ApiError, PageError};
use crate::extract::AppJson;
use crate::security::Csrf;
use crate::state::{AppState, StudioSettings};
use crate::views;

pub fn api() -> Router<AppState> {
    Router::new().route("/settings", get(settings_show).put(settings_update))
}

pub fn pages() -> Router<AppState> {
    Router::new().route("/settings", get(settings_page))
}

async fn settings_show(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "settings": state.settings(),
        "home": state.home.root(),
    }))
}

async fn settings_update(
    State(state): State<AppState>,
    AppJson(new): AppJson<StudioSettings>,
) -> Result<Json<StudioSettings>, ApiError> {
    if new.max_upload_mb == 0 || new.max_epochs == 0 {
        return Err(ApiError::bad_request(
            "`max_upload_mb` and `max_epochs` must be at least 1",
        ));
    }
    let mut cfg = ferrotune_config::Experiment::default();
    let pairs: Vec<(String, String)> = new
        .experiment_defaults
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ferrotune_config::apply_overrides(&mut cfg, &pairs)?;
    state.save_settings(new.clone())?;
    Ok(Json(new))
}

async fn settings_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<Csrf>,
) -> Result<Html<String>, PageError> {
    let settings = state.settings();
    let defaults: String = settings
        .experiment_defaults
        .iter()
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect();
    Ok(views::page(
        &csrf,
        "settings.html",
        minijinja::context! {
            title => "Settings",
            nav => "settings",
            settings => minijinja::value::Serde(&settings),
            defaults => defaults,
            home => state.home.root().display().to_string(),
            datasets => state.home.datasets().display().to_string(),
            experiments => state.home.experiments().display().to_string(),
        },
    )?)
}
