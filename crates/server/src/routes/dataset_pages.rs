//! The dataset pages: `/datasets` (list), `/datasets/new` (upload or path, then the mapping step) and
//! `/datasets/{name}` (statistics as charts, sample rows as conversations, edit the mapping, delete).

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Extension, Router};
use ferrotune_store::{CanonicalRow, Split};
use serde::Serialize;

use crate::charts::{bar_chart, histogram_bars, Bar};
use crate::error::PageError;
use crate::extract::AppPath;
use crate::security::Csrf;
use crate::state::AppState;
use crate::views;

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/datasets", get(datasets_page))
        .route("/datasets/new", get(dataset_new_page))
        .route("/datasets/{name}", get(dataset_page))
}

async fn datasets_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<Csrf>,
) -> Result<Html<String>, PageError> {
    let datasets = state.with_store(|s| Ok(s.datasets()?)).await?;
    Ok(views::page(
        &csrf,
        "datasets.html",
        minijinja::context! { title => "Datasets", nav => "datasets", datasets => minijinja::value::Serde(&datasets) },
    )?)
}

async fn dataset_new_page(Extension(csrf): Extension<Csrf>) -> Result<Html<String>, PageError> {
    Ok(views::page(
        &csrf,
        "dataset_new.html",
        minijinja::context! {
            title => "Import a dataset",
            nav => "datasets",
            layouts => ferrotune_store::Shape::ALL.map(ferrotune_store::Shape::name).to_vec(),
        },
    )?)
}

/// One conversation of sample rows, root first.
#[derive(Debug, Serialize)]
pub struct Conversation {
    pub system: String,
    pub turns: Vec<CanonicalRow>,
}

/// Chains sample rows into conversations by their parent ids (a row whose parent is not among them starts one).
pub fn conversations(rows: Vec<CanonicalRow>) -> Vec<Conversation> {
    let ids: std::collections::HashSet<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut children: HashMap<String, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        match &r.parent_id {
            Some(p) if ids.contains(p) => children.entry(p.clone()).or_default().push(i),
            _ => roots.push(i),
        }
    }
    let mut out = Vec::new();
    for root in roots {
        let mut turns = vec![rows[root].clone()];
        let mut at = root;
        while let Some(next) = children.get(&rows[at].id).and_then(|c| c.first()).copied() {
            turns.push(rows[next].clone());
            at = next;
            if turns.len() > rows.len() {
                break;
            }
        }
        out.push(Conversation {
            system: rows[root].system.clone(),
            turns,
        });
    }
    out
}

async fn dataset_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    AppPath(name): AppPath<String>,
) -> Result<Html<String>, PageError> {
    let n = name.clone();
    let (info, rows) = state
        .with_store(move |s| Ok((s.dataset(&n)?, s.sample(&n, Split::Train, 30)?)))
        .await?;
    let stats = &info.train.statistics;
    let turns: Vec<Bar> = stats
        .turns_per_conversation
        .iter()
        .map(|(t, c)| Bar {
            label: t.to_string(),
            value: *c,
        })
        .collect();
    let charts = vec![
        bar_chart(
            "Words per prompt",
            "words",
            "prompts",
            &histogram_bars(&stats.prompt_words),
        ),
        bar_chart(
            "Words per answer",
            "words",
            "answers",
            &histogram_bars(&stats.answer_words),
        ),
        bar_chart(
            "Words per conversation",
            "words",
            "conversations",
            &histogram_bars(&stats.conversation_words),
        ),
        bar_chart("Turns per conversation", "turns", "conversations", &turns),
    ];
    let titles = [
        "Words per prompt",
        "Words per answer",
        "Words per conversation",
        "Turns per conversation",
    ];
    let charts: Vec<minijinja::Value> = charts
        .into_iter()
        .zip(titles)
        .map(|(svg, title)| {
            minijinja::context! { title => title, svg => minijinja::Value::from_safe_string(svg) }
        })
        .collect();
    let mapping = &info.mapping;
    Ok(views::page(
        &csrf,
        "dataset.html",
        minijinja::context! {
            title => format!("Dataset {}", info.name),
            nav => "datasets",
            dataset => minijinja::value::Serde(&info),
            mapping_prompt => mapping.prompt.join(", "),
            mapping_shape => mapping.shape.map(|s| s.name()).unwrap_or(""),
            conversations => minijinja::value::Serde(conversations(rows)),
            charts => charts,
        },
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_follow_parent_ids() {
        let row = |id: &str, parent: Option<&str>| CanonicalRow {
            id: id.into(),
            parent_id: parent.map(Into::into),
            prompt: format!("p{id}"),
            answer: format!("a{id}"),
            ..Default::default()
        };
        let c = conversations(vec![
            row("1", None),
            row("3", Some("2")),
            row("2", Some("1")),
            row("9", Some("x")),
        ]);
        assert_eq!(c.len(), 2);
        let ids: Vec<&str> = c[0].turns.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["1", "2", "3"]);
        assert_eq!(c[1].turns[0].id, "9");
    }
}
