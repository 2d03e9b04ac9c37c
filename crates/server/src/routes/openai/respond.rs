//! The two generation endpoints: a request read ([`super::request`]), its model resolved, one engine request per
//! prompt, then OpenAI's completion object or its stream of chunks (`data: {chunk}` … `data: [DONE]`).

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrotune_engine::{FinishReason, Generation, Request, Update};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::{request, resolve, OpenAiError};
use crate::state::AppState;

/// Which endpoint answers: the object names and the shape of a choice differ.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Text,
}

impl Kind {
    fn id(self) -> String {
        let prefix = match self {
            Kind::Chat => "chatcmpl",
            Kind::Text => "cmpl",
        };
        format!("{prefix}-{}", crate::security::random_hex(12))
    }

    fn object(self, chunk: bool) -> &'static str {
        match (self, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Text, _) => "text_completion",
        }
    }
}

pub(crate) async fn chat_completions(State(state): State<AppState>, body: Bytes) -> Response {
    answer(state, body, Kind::Chat)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn completions(State(state): State<AppState>, body: Bytes) -> Response {
    answer(state, body, Kind::Text)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// OpenAI's `finish_reason`.
fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::StopToken | FinishReason::StopString | FinishReason::Cancelled => "stop",
        FinishReason::Length | FinishReason::Context => "length",
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn answer(state: AppState, body: Bytes, kind: Kind) -> Result<Response, OpenAiError> {
    let body: Value = serde_json::from_slice(&body).map_err(|e| {
        OpenAiError::invalid("body", format!("the request body is not valid JSON: {e}"))
    })?;
    let parsed = match kind {
        Kind::Chat => request::chat(&body)?,
        Kind::Text => request::completion(&body)?,
    };
    let spec = resolve(&state, &parsed.model).await?;
    let mut receivers = Vec::with_capacity(parsed.prompts.len());
    for prompt in &parsed.prompts {
        receivers.push(state.engine.submit(Request {
            model: spec.clone(),
            prompt: prompt.clone(),
            generation: parsed.generation.clone(),
        })?);
    }
    // Each request says Started (or why it failed) before any text: a failure is still an HTTP error.
    let mut prompt_tokens = 0;
    for r in receivers.iter_mut() {
        match r.recv().await {
            Some(Update::Started { prompt_tokens: n }) => prompt_tokens += n,
            Some(Update::Failed(f)) => return Err(f.into()),
            _ => {
                return Err(OpenAiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the engine stopped before answering",
                ))
            }
        }
    }
    let head = Head {
        id: kind.id(),
        created: unix_now(),
        model: parsed.model.clone(),
        kind,
    };
    if parsed.stream {
        return Ok(
            stream_response(head, receivers, prompt_tokens, parsed.include_usage).into_response(),
        );
    }
    whole_response(head, receivers, prompt_tokens).await
}

/// What every object and chunk of one answer shares.
#[derive(Clone)]
struct Head {
    id: String,
    created: u64,
    model: String,
    kind: Kind,
}

impl Head {
    fn object(&self, chunk: bool, choices: Vec<Value>) -> Value {
        json!({
            "id": self.id,
            "object": self.kind.object(chunk),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    fn choice(
        &self,
        index: usize,
        text: &str,
        finish: Option<&str>,
        first: bool,
        chunk: bool,
    ) -> Value {
        match (self.kind, chunk) {
            (Kind::Chat, false) => json!({
                "index": index,
                "message": { "role": "assistant", "content": text },
                "finish_reason": finish,
                "logprobs": null,
            }),
            (Kind::Chat, true) => {
                let delta = match (first, finish) {
                    (true, _) => json!({ "role": "assistant", "content": text }),
                    (false, Some(_)) => json!({}),
                    (false, None) => json!({ "content": text }),
                };
                json!({ "index": index, "delta": delta, "finish_reason": finish, "logprobs": null })
            }
            (Kind::Text, _) => json!({
                "index": index,
                "text": text,
                "finish_reason": finish,
                "logprobs": null,
            }),
        }
    }
}

fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

/// Waits for every generation and answers with the completion object.
async fn whole_response(
    head: Head,
    receivers: Vec<UnboundedReceiver<Update>>,
    prompt_tokens: usize,
) -> Result<Response, OpenAiError> {
    let mut choices = Vec::new();
    let mut completion_tokens = 0;
    for (index, mut r) in receivers.into_iter().enumerate() {
        let generation = loop {
            match r.recv().await {
                Some(Update::Done { generation, .. }) => break generation,
                Some(Update::Failed(f)) => return Err(f.into()),
                Some(_) => {}
                None => {
                    return Err(OpenAiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "the engine stopped before answering",
                    ))
                }
            }
        };
        completion_tokens += generation.token_ids.len();
        choices.push(head.choice(
            index,
            &generation.text,
            Some(finish_reason(generation.finish_reason)),
            false,
            false,
        ));
    }
    let mut object = head.object(false, choices);
    object["usage"] = usage(prompt_tokens, completion_tokens);
    Ok(Json(object).into_response())
}

/// What the stream still waits for.
struct Streaming {
    head: Head,
    updates: UnboundedReceiver<(usize, Update)>,
    started: Vec<bool>,
    open: usize,
    prompt_tokens: usize,
    completion_tokens: usize,
    include_usage: bool,
    done: bool,
}

/// The chunks of the answers as they come (the prompts' updates merged), then the usage chunk when asked,
/// then `[DONE]`. A client that goes away drops the stream, and with it the engine's receivers.
fn stream_response(
    head: Head,
    receivers: Vec<UnboundedReceiver<Update>>,
    prompt_tokens: usize,
    include_usage: bool,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (merged, updates) = unbounded_channel();
    let open = receivers.len();
    for (index, mut r) in receivers.into_iter().enumerate() {
        let merged = merged.clone();
        tokio::spawn(async move {
            while let Some(u) = r.recv().await {
                if merged.send((index, u)).is_err() {
                    break;
                }
            }
        });
    }
    let streaming = Streaming {
        head,
        updates,
        started: vec![false; open],
        open,
        prompt_tokens,
        completion_tokens: 0,
        include_usage,
        done: false,
    };
    let events = stream::unfold(streaming, |mut s| async move {
        if s.done {
            return None;
        }
        let events = match s.updates.recv().await {
            Some((index, update)) => s.chunk(index, update),
            None => {
                s.done = true;
                s.end()
            }
        };
        Some((events, s))
    })
    .flat_map(stream::iter)
    .map(Ok);
    Sse::new(events).keep_alive(KeepAlive::default())
}

impl Streaming {
    fn data(&self, mut value: Value) -> Event {
        if self.include_usage && value.get("usage").is_none() && value.get("error").is_none() {
            value["usage"] = Value::Null;
        }
        Event::default().data(value.to_string())
    }

    fn chunk(&mut self, index: usize, update: Update) -> Vec<Event> {
        let h = self.head.clone();
        match update {
            Update::Started { .. } => Vec::new(),
            Update::Text(piece) => {
                let first = !std::mem::replace(&mut self.started[index], true);
                vec![self.data(h.object(true, vec![h.choice(index, &piece, None, first, true)]))]
            }
            Update::Done { generation, .. } => self.finished(index, &generation),
            Update::Failed(f) => {
                let e: OpenAiError = f.into();
                vec![Event::default().data(
                    json!({ "error": { "message": e.message, "type": e.kind, "param": e.param, "code": e.code } })
                        .to_string(),
                )]
            }
        }
    }

    fn finished(&mut self, index: usize, generation: &Generation) -> Vec<Event> {
        let h = self.head.clone();
        let mut out = Vec::new();
        // A chat answer with no text still opens with the assistant's role.
        if h.kind == Kind::Chat && !std::mem::replace(&mut self.started[index], true) {
            out.push(self.data(h.object(true, vec![h.choice(index, "", None, true, true)])));
        }
        self.completion_tokens += generation.token_ids.len();
        self.open -= 1;
        let reason = finish_reason(generation.finish_reason);
        out.push(self.data(h.object(true, vec![h.choice(index, "", Some(reason), false, true)])));
        out
    }

    fn end(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        if self.include_usage && self.open == 0 {
            let mut last = self.head.object(true, Vec::new());
            last["usage"] = usage(self.prompt_tokens, self.completion_tokens);
            out.push(self.data(last));
        }
        out.push(Event::default().data("[DONE]"));
        out
    }
}
