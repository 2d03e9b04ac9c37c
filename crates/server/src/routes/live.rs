//! Live updates over Server-Sent Events, fed by what the training process writes (the one event stream:
//! `metrics.jsonl`, `logs.log`, and the registry the runner keeps): `GET /api/events` sends the experiment list
//! whenever it changes; `GET /api/experiments/{name}/events` replays and then follows one experiment's metric
//! events, log lines, status, and the state of its export jobs.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use ferrotune_store::RunFollower;

use crate::error::ApiError;
use crate::extract::AppPath;
use crate::state::AppState;

/// How often the files and the registry are looked at.
const TICK: Duration = Duration::from_millis(500);

pub fn api() -> Router<AppState> {
    Router::new()
        .route("/events", get(events_all))
        .route("/experiments/{name}/events", get(events_one))
}

fn sse(rx: mpsc::Receiver<Event>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(ReceiverStream::new(rx).map(Ok)).keep_alive(KeepAlive::default())
}

fn json_event(name: &str, value: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(value).unwrap_or_default())
}

async fn events_all(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut last = String::new();
        loop {
            if let Ok(list) = state.with_store(super::experiments::rows).await {
                let text = serde_json::to_string(&list).unwrap_or_default();
                if text != last {
                    if tx
                        .send(Event::default().event("experiments").data(text.clone()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    last = text;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK * 2) => {}
                _ = tx.closed() => return,
            }
        }
    });
    sse(rx)
}

async fn events_one(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let n = name.clone();
    let files = state.with_store(move |s| Ok(s.follow_run(&n)?)).await?;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(follow(state, name, files, tx));
    Ok(sse(rx))
}

async fn follow(state: AppState, name: String, mut files: RunFollower, tx: mpsc::Sender<Event>) {
    let mut last_status = String::new();
    let mut last_exports = Vec::new();
    loop {
        let jobs = super::exports::jobs_of(&state, &name);
        if jobs != last_exports {
            if tx.send(json_event("export", &jobs)).await.is_err() {
                return;
            }
            last_exports = jobs;
        }
        let n = name.clone();
        if let Ok(info) = state.with_store(move |s| Ok(s.experiment(&n)?)).await {
            let text = serde_json::to_string(&info).unwrap_or_default();
            if text != last_status {
                if tx.send(json_event("status", &info)).await.is_err() {
                    return;
                }
                last_status = text;
            }
        }
        // Both files are read on one blocking task; the follower travels there and back.
        let Ok((f, (events, log_lines))) = tokio::task::spawn_blocking(move || {
            let new = files.read();
            (files, new)
        })
        .await
        else {
            return;
        };
        files = f;
        for event in events {
            if tx.send(json_event("metric", &event)).await.is_err() {
                return;
            }
        }
        for line in log_lines {
            if tx.send(json_event("log", &line)).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = tx.closed() => return,
        }
    }
}
