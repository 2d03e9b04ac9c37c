//! Live updates over Server-Sent Events, fed by what the training process writes (the one event stream:
//! `metrics.jsonl`, `logs.log`, and the registry the runner keeps): `GET /api/events` sends the experiment list
//! whenever it changes; `GET /api/experiments/{name}/events` replays and then follows one experiment's metric
//! events, log lines and status.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

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
            if let Ok(list) = state.with_store(|s| Ok(s.experiments()?)).await {
                let text =
                    serde_json::to_string(&super::experiments::rows(list)).unwrap_or_default();
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

/// Reads the complete lines appended to a file since the last call.
pub struct Follower {
    path: PathBuf,
    offset: u64,
}

impl Follower {
    pub fn new(path: PathBuf) -> Follower {
        Follower { path, offset: 0 }
    }

    /// New complete lines (a half-written last line waits for the next call). A file that shrank (a restart
    /// cleared it) is read again from the start.
    pub fn read_lines(&mut self) -> Vec<String> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0;
        }
        if len == self.offset || f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if f.take(len - self.offset).read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        self.offset += end as u64 + 1;
        String::from_utf8_lossy(&buf[..end])
            .lines()
            .map(String::from)
            .collect()
    }
}

async fn events_one(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let n = name.clone();
    let info = state.with_store(move |s| Ok(s.experiment(&n)?)).await?;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(follow(state, name, info.output_dir, tx));
    Ok(sse(rx))
}

async fn follow(state: AppState, name: String, dir: PathBuf, tx: mpsc::Sender<Event>) {
    let mut metrics = Follower::new(dir.join("metrics.jsonl"));
    let mut logs = Follower::new(dir.join("logs.log"));
    let mut last_status = String::new();
    loop {
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
        // Both files are read on a blocking thread; the followers travel there and back.
        let Ok((m, l, metric_lines, log_lines)) = tokio::task::spawn_blocking(move || {
            let (a, b) = (metrics.read_lines(), logs.read_lines());
            (metrics, logs, a, b)
        })
        .await
        else {
            return;
        };
        (metrics, logs) = (m, l);
        for line in metric_lines {
            if serde_json::from_str::<serde_json::Value>(&line).is_ok()
                && tx
                    .send(Event::default().event("metric").data(line))
                    .await
                    .is_err()
            {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follower_returns_complete_lines_once_and_rereads_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut f = Follower::new(path.clone());
        assert!(f.read_lines().is_empty());
        std::fs::write(&path, "a\nb\nhal").unwrap();
        assert_eq!(f.read_lines(), ["a", "b"]);
        assert!(f.read_lines().is_empty());
        std::fs::write(&path, "a\nb\nhalf\n").unwrap();
        assert_eq!(f.read_lines(), ["half"]);
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(f.read_lines(), ["new"]);
    }
}
