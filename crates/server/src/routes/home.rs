//! `/` (machine load, experiments by status, recent datasets and experiments) and `GET /api/system`.

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Extension, Json, Router};
use ferrotune_store::Status;

use crate::error::PageError;
use crate::security::Csrf;
use crate::state::AppState;
use crate::system::{self, SystemInfo};
use crate::views;

pub fn api() -> Router<AppState> {
    Router::new().route("/system", get(system_show))
}

pub fn pages() -> Router<AppState> {
    Router::new().route("/", get(home_page))
}

async fn system_show(State(state): State<AppState>) -> Json<SystemInfo> {
    Json(system::read(state.home.root()))
}

async fn home_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<Csrf>,
) -> Result<Html<String>, PageError> {
    let (experiments, datasets, backbones) = state
        .with_store(|s| Ok((s.experiments()?, s.datasets()?, s.backbones()?)))
        .await?;
    let by_status: Vec<(&str, usize)> = [
        Status::Queued,
        Status::Running,
        Status::Finished,
        Status::Failed,
        Status::Stopped,
    ]
    .iter()
    .map(|st| {
        (
            st.name(),
            experiments.iter().filter(|e| e.status == *st).count(),
        )
    })
    .collect();
    let mut recent_experiments = experiments.clone();
    recent_experiments.sort_by_key(|e| std::cmp::Reverse(e.created));
    recent_experiments.truncate(5);
    let mut recent_datasets = datasets.clone();
    recent_datasets.sort_by_key(|d| std::cmp::Reverse(d.created));
    recent_datasets.truncate(5);
    let sys = system::read(state.home.root());
    Ok(views::page(
        &csrf,
        "home.html",
        minijinja::context! {
            title => "Home",
            nav => "home",
            system => minijinja::value::Serde(&sys),
            memory_used => sys.memory_total.saturating_sub(sys.memory_available),
            disk_used => sys.disk_total.saturating_sub(sys.disk_free),
            by_status => by_status,
            experiments => minijinja::value::Serde(&recent_experiments),
            datasets => minijinja::value::Serde(&recent_datasets),
            backbones => backbones.len(),
            notice => state.notice(),
        },
    )?)
}
