//! `POST /api/experiments/{name}/chat`: the conversation so far in, the answer out as Server-Sent Events
//! (`token` pieces, then `done` with timings, or `error`), from the experiment's backbone with its trained
//! adapter (the backbone alone while no adapter is saved), through the engine that also serves `/v1`.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::post;
use axum::Router;
use ferrotune_config::Experiment;
use ferrotune_engine::{GenerationConfig, ModelSpec, Prompt, Request, Update};
use ferrotune_home::RunDir;
use ferrotune_model::{Device, Message};
use ferrotune_train::load::TrainedModel;
use futures_util::Stream;
use serde::Deserialize;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;

use crate::error::ApiError;
use crate::extract::{AppJson, AppPath};
use crate::state::{AppState, LoadedModel};

/// The most new tokens a chat answer may ask for.
pub const MAX_NEW_TOKENS: usize = 2048;

pub fn api() -> Router<AppState> {
    Router::new().route("/experiments/{name}/chat", post(chat_create))
}

/// One chat message.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// Editable generation settings (defaults: the backbone's, greedy).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ChatSettings {
    pub max_new_tokens: usize,
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub repetition_penalty: f64,
    pub seed: u64,
    pub system: String,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            max_new_tokens: 256,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            seed: 0,
            system: String::new(),
        }
    }
}

/// `POST /api/experiments/{name}/chat`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub settings: ChatSettings,
}

/// Makes `slot` hold the run's trained model (kept when it already does).
pub(crate) fn load(
    state: &AppState,
    slot: &mut Option<LoadedModel>,
    model: &TrainedModel,
) -> Result<(), ApiError> {
    let stamp = model
        .adapter
        .as_ref()
        .and_then(|a| std::fs::metadata(a).ok())
        .and_then(|m| m.modified().ok());
    let key = (model.backbone.clone(), model.adapter.clone(), stamp);
    if slot.as_ref().is_some_and(|m| m.key == key) {
        return Ok(());
    }
    *slot = None;
    let backbone = model.load(&state.home, &Device::Cpu).map_err(|e| {
        ApiError::from(e).context(format!(
            "cannot load backbone `{}`",
            model.backbone.display()
        ))
    })?;
    *slot = Some(LoadedModel { key, backbone });
    Ok(())
}

/// The engine request of a chat message, and how many earlier exchanges `prediction.num_history` left out.
fn engine_request(model: &TrainedModel, req: &ChatRequest) -> Result<(Request, usize), ApiError> {
    if req.messages.is_empty() || req.messages.last().is_some_and(|m| m.role != "user") {
        return Err(ApiError::bad_request(
            "the conversation must end with a user message",
        ));
    }
    if req.settings.max_new_tokens == 0 || req.settings.max_new_tokens > MAX_NEW_TOKENS {
        return Err(ApiError::bad_request(format!(
            "`max_new_tokens` must be between 1 and {MAX_NEW_TOKENS}"
        )));
    }
    let mut history: Vec<Message> = Vec::new();
    if !req.settings.system.trim().is_empty() {
        history.push(Message::new("system", req.settings.system.clone()));
    }
    // `prediction.num_history`: the last that many earlier exchanges (a user message and its answer) are kept.
    let (kept, dropped) =
        recent_history(&req.messages, model.config.prediction.num_history as usize);
    history.extend(
        kept.iter()
            .map(|m| Message::new(&m.role, m.content.clone())),
    );
    let s = &req.settings;
    let generation = GenerationConfig {
        max_new_tokens: s.max_new_tokens,
        temperature: s.temperature,
        top_k: s.top_k,
        top_p: s.top_p,
        repetition_penalty: s.repetition_penalty,
        seed: s.seed,
        ..GenerationConfig::default()
    };
    let request = Request {
        model: ModelSpec {
            backbone: model.backbone.clone(),
            format: model.format,
            adapter: model.adapter.clone(),
        },
        prompt: Prompt::Messages(history),
        generation,
    };
    Ok((request, dropped))
}

/// The studio's SSE event of an engine update (`None` for what the chat does not show).
fn chat_event(state: &AppState, name: &str, update: Update, dropped: usize) -> Option<Event> {
    match update {
        Update::Started { .. } => None,
        Update::Text(piece) => Some(
            Event::default()
                .event("token")
                .data(serde_json::to_string(&piece).unwrap_or_default()),
        ),
        Update::Done { generation, .. } => {
            let done = serde_json::json!({
                "text": generation.text,
                "tokens": generation.token_ids.len(),
                "finish_reason": format!("{:?}", generation.finish_reason).to_lowercase(),
                "tokens_per_second": generation.decode_tokens_per_second(),
                "history_dropped": dropped,
            });
            Some(Event::default().event("done").data(done.to_string()))
        }
        Update::Failed(failure) => {
            // The answer has begun (200, an event stream), so the logging middleware never sees this error: an
            // internal one is logged here with its details, the stream gets its request id.
            let shown = if failure.bad_request {
                failure.message
            } else {
                let e = ApiError::internal(failure.message);
                state.log_error(&format!("POST /api/experiments/{name}/chat"), &e);
                e.message
            };
            Some(
                Event::default()
                    .event("error")
                    .data(serde_json::to_string(&shown).unwrap_or_default()),
            )
        }
    }
}

/// The conversation with only the last `keep` exchanges before the final user message (system messages stay),
/// and how many earlier exchanges were left out.
fn recent_history(messages: &[ChatMessage], keep: usize) -> (Vec<&ChatMessage>, usize) {
    let (last, earlier) = messages
        .split_last()
        .expect("the conversation ends with a user message");
    let mut start = earlier.len();
    let mut exchanges = 0;
    let mut total = 0;
    for (i, m) in earlier.iter().enumerate().rev() {
        if m.role == "user" {
            total += 1;
            if exchanges < keep {
                exchanges += 1;
                start = i;
            }
        }
    }
    let kept = earlier
        .iter()
        .enumerate()
        .filter(|(i, m)| *i >= start || m.role == "system")
        .map(|(_, m)| m)
        .chain(std::iter::once(last))
        .collect();
    (kept, total - exchanges)
}

/// The registered name of the backbone at `path` (its folder name when it is not registered).
async fn backbone_name(state: &AppState, path: &std::path::Path) -> String {
    let p = path.to_path_buf();
    let registered = state
        .with_store(move |s| {
            Ok(s.backbones()?
                .into_iter()
                .find(|b| b.path == p)
                .map(|b| b.name))
        })
        .await
        .ok()
        .flatten();
    registered.unwrap_or_else(|| {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string())
    })
}

async fn chat_create(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
    AppJson(req): AppJson<ChatRequest>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let n = name.clone();
    let info = state.with_store(move |s| Ok(s.experiment(&n)?)).await?;
    let cfg = Experiment::from_yaml_str(&info.config, &name)?;
    let run = RunDir::new(&info.output_dir);
    let st = state.clone();
    let model = tokio::task::spawn_blocking(move || {
        TrainedModel::of_config(cfg, &run, &st.home, &Device::Cpu)
    })
    .await
    .map_err(|e| ApiError::internal(format!("task failed: {e}")))??;
    let (request, dropped) = engine_request(&model, &req)?;
    let backbone = backbone_name(&state, &model.backbone).await;
    let note = match &model.adapter {
        Some(_) => {
            format!("Answering with {backbone} and the trained adapter of experiment {name}")
        }
        None => {
            format!("Answering with {backbone} alone: experiment {name} has saved no adapter yet")
        }
    };
    let info = Event::default()
        .event("info")
        .data(serde_json::to_string(&note).unwrap_or_default());
    // A client that goes away (closed tab, "clear history" mid-answer) drops this stream and with it the
    // engine's receiver: the engine stops that sequence at its next step.
    let updates = state.engine.submit(request).map_err(ApiError::from)?;
    let events = UnboundedReceiverStream::new(updates)
        .filter_map(move |u| chat_event(&state, &name, u, dropped));
    Ok(Sse::new(tokio_stream::once(info).chain(events).map(Ok)).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(roles: &[&str]) -> Vec<ChatMessage> {
        roles
            .iter()
            .enumerate()
            .map(|(i, r)| ChatMessage {
                role: r.to_string(),
                content: format!("{r} {i}"),
            })
            .collect()
    }

    #[test]
    fn the_chat_keeps_the_last_num_history_exchanges_and_system_messages() {
        let m = msgs(&[
            "system",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
        ]);
        fn contents((kept, dropped): (Vec<&ChatMessage>, usize)) -> (Vec<String>, usize) {
            (kept.iter().map(|m| m.content.clone()).collect(), dropped)
        }
        assert_eq!(
            contents(recent_history(&m, 1)),
            (
                ["system 0", "user 5", "assistant 6", "user 7"]
                    .map(String::from)
                    .to_vec(),
                2
            )
        );
        assert_eq!(
            contents(recent_history(&m, 0)),
            (["system 0", "user 7"].map(String::from).to_vec(), 3)
        );
        assert_eq!(contents(recent_history(&m, 4)).0.len(), 8);
        assert_eq!(contents(recent_history(&m, 4)).1, 0);
    }
}
