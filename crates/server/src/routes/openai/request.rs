//! The fields of `/v1/chat/completions` and `/v1/completions` requests, read with OpenAI's names and ranges;
//! a field that is malformed, out of range or asks for what is not served is a 400 naming it.

use ferrotune_engine::{GenerationConfig, Message, Prompt};
use serde_json::{Map, Value};

use super::OpenAiError;

/// Most stop sequences (OpenAI's limit).
const MAX_STOP: usize = 4;
/// New tokens of a chat completion that does not say (the context caps it further).
pub(crate) const DEFAULT_CHAT_TOKENS: usize = 1024;
/// New tokens of a text completion that does not say (OpenAI's default).
pub(crate) const DEFAULT_COMPLETION_TOKENS: usize = 16;

/// A request, read.
#[derive(Debug)]
pub(crate) struct ParsedRequest {
    pub(crate) model: String,
    /// One prompt per choice group: chat has one; completions one per prompt of the list.
    pub(crate) prompts: Vec<Prompt>,
    pub(crate) generation: GenerationConfig,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
}

/// The JSON object of a request body.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Result<Option<f64>, OpenAiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if range.contains(&x) => Ok(Some(x)),
                _ => Err(OpenAiError::invalid(
                    name,
                    format!(
                        "`{name}` must be a number from {} to {}, found {v}",
                        range.start(),
                        range.end()
                    ),
                )),
            },
        }
    }

    fn integer(&self, name: &str, min: u64) -> Result<Option<u64>, OpenAiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(x) if x >= min => Ok(Some(x)),
                _ => Err(OpenAiError::invalid(
                    name,
                    format!("`{name}` must be an integer of at least {min}, found {v}"),
                )),
            },
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, OpenAiError> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(OpenAiError::invalid(
                name,
                format!("`{name}` must be true or false, found {v}"),
            )),
        }
    }
}

fn object(body: &Value) -> Result<&Map<String, Value>, OpenAiError> {
    body.as_object()
        .ok_or_else(|| OpenAiError::invalid("body", "the request body must be a JSON object"))
}

/// A `/v1/chat/completions` body.
pub(crate) fn chat(body: &Value) -> Result<ParsedRequest, OpenAiError> {
    let f = Fields(object(body)?);
    let messages = match f.get("messages") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, m)| message(i, m))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(OpenAiError::invalid(
                "messages",
                "`messages` must be a non-empty list",
            ))
        }
        None => return Err(OpenAiError::invalid("messages", "`messages` is required")),
    };
    let max = f
        .integer("max_completion_tokens", 1)?
        .or(f.integer("max_tokens", 1)?)
        .map_or(DEFAULT_CHAT_TOKENS, |n| n as usize);
    common(&f, vec![Prompt::Messages(messages)], max)
}

/// A `/v1/completions` body.
pub(crate) fn completion(body: &Value) -> Result<ParsedRequest, OpenAiError> {
    let f = Fields(object(body)?);
    let bad = || {
        OpenAiError::invalid(
            "prompt",
            "`prompt` must be a string or a non-empty list of strings",
        )
    };
    let prompts = match f.get("prompt") {
        Some(Value::String(s)) => vec![Prompt::Text(s.clone())],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(|s| Prompt::Text(s.into())).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
        None => return Err(OpenAiError::invalid("prompt", "`prompt` is required")),
    };
    if f.get("suffix").is_some_and(|s| s.as_str() != Some("")) {
        return Err(OpenAiError::invalid(
            "suffix",
            "`suffix` (insertion) is not supported",
        ));
    }
    if f.boolean("echo")? {
        return Err(OpenAiError::invalid("echo", "`echo` is not supported"));
    }
    if f.get("best_of").is_some_and(|v| v.as_u64() != Some(1)) {
        return Err(OpenAiError::invalid("best_of", "`best_of` must be 1"));
    }
    let max = f
        .integer("max_tokens", 1)?
        .map_or(DEFAULT_COMPLETION_TOKENS, |n| n as usize);
    common(&f, prompts, max)
}

/// One chat message: a role and text content (a string, or a list of `text` parts).
fn message(i: usize, m: &Value) -> Result<Message, OpenAiError> {
    let param = format!("messages[{i}]");
    let role = m["role"].as_str().unwrap_or_default();
    let role = match role {
        "system" | "developer" => "system",
        "user" => "user",
        "assistant" => "assistant",
        other => {
            return Err(OpenAiError::invalid(
                format!("{param}.role"),
                format!(
                    "`{param}.role` must be system, developer, user or assistant, found `{other}`"
                ),
            ))
        }
    };
    let content = match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                match (part["type"].as_str(), part["text"].as_str()) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(OpenAiError::invalid(
                            format!("{param}.content[{j}]"),
                            format!("`{param}.content[{j}]` must be a text part (`{{\"type\": \"text\", \"text\": …}}`): only text is served"),
                        ))
                    }
                }
            }
            text
        }
        Value::Null if role == "assistant" => String::new(),
        _ => {
            return Err(OpenAiError::invalid(
                format!("{param}.content"),
                format!("`{param}.content` must be a string or a list of text parts"),
            ))
        }
    };
    Ok(Message::new(role, content))
}

/// The sampling fields both endpoints share.
fn common(
    f: &Fields,
    prompts: Vec<Prompt>,
    max_new_tokens: usize,
) -> Result<ParsedRequest, OpenAiError> {
    let model = match f.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => {
            return Err(OpenAiError::invalid(
                "model",
                "`model` is required: a name from `GET /v1/models`",
            ))
        }
    };
    if f.get("n").is_some_and(|n| n.as_u64() != Some(1)) {
        return Err(OpenAiError::invalid(
            "n",
            "`n` must be 1: one choice per prompt is served",
        ));
    }
    if f.boolean("logprobs")? || f.get("top_logprobs").is_some() {
        return Err(OpenAiError::invalid(
            "logprobs",
            "`logprobs` is not supported",
        ));
    }
    if f.get("tools")
        .is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err(OpenAiError::invalid(
            "tools",
            "`tools` (function calling) is not supported",
        ));
    }
    if let Some(format) = f.get("response_format") {
        if format["type"].as_str() != Some("text") {
            return Err(OpenAiError::invalid(
                "response_format",
                "`response_format` must be `{\"type\": \"text\"}`: structured output is not supported",
            ));
        }
    }
    let stop = match f.get("stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items))
            if items.len() <= MAX_STOP && items.iter().all(Value::is_string) =>
        {
            items
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        }
        Some(_) => {
            return Err(OpenAiError::invalid(
                "stop",
                format!("`stop` must be a string or a list of at most {MAX_STOP} strings"),
            ))
        }
    };
    let stream = f.boolean("stream")?;
    let include_usage = match f.get("stream_options") {
        None => false,
        Some(o) if stream => Fields(o.as_object().ok_or_else(|| {
            OpenAiError::invalid("stream_options", "`stream_options` must be an object")
        })?)
        .boolean("include_usage")?,
        Some(_) => {
            return Err(OpenAiError::invalid(
                "stream_options",
                "`stream_options` is only allowed with `stream: true`",
            ))
        }
    };
    let temperature = f.number("temperature", 0.0..=2.0)?.unwrap_or(1.0);
    let top_p = f.number("top_p", 0.0..=1.0)?;
    if top_p == Some(0.0) {
        return Err(OpenAiError::invalid("top_p", "`top_p` must be above 0"));
    }
    let min_new_tokens = f.integer("min_tokens", 0)?.map_or(0, |n| n as usize);
    if min_new_tokens > max_new_tokens {
        return Err(OpenAiError::invalid(
            "min_tokens",
            format!("`min_tokens` ({min_new_tokens}) must not exceed the most new tokens ({max_new_tokens})"),
        ));
    }
    let generation = GenerationConfig {
        max_new_tokens,
        min_new_tokens,
        temperature,
        top_p,
        top_k: f
            .integer("top_k", 0)?
            .map(|k| k as usize)
            .filter(|&k| k > 0),
        min_p: f.number("min_p", 0.0..=1.0)?,
        repetition_penalty: match f.number("repetition_penalty", 0.0..=f64::MAX)? {
            Some(0.0) => {
                return Err(OpenAiError::invalid(
                    "repetition_penalty",
                    "`repetition_penalty` must be above 0",
                ))
            }
            Some(p) => p,
            None => 1.0,
        },
        presence_penalty: f.number("presence_penalty", -2.0..=2.0)?.unwrap_or(0.0),
        frequency_penalty: f.number("frequency_penalty", -2.0..=2.0)?.unwrap_or(0.0),
        seed: match f.get("seed") {
            None => rand::random(),
            Some(v) => v.as_i64().map(|s| s as u64).ok_or_else(|| {
                OpenAiError::invalid("seed", format!("`seed` must be an integer, found {v}"))
            })?,
        },
        stop_strings: stop,
        ..GenerationConfig::default()
    };
    Ok(ParsedRequest {
        model,
        prompts,
        generation,
        stream,
        include_usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn param(body: Value) -> (String, String) {
        let e = chat(&body).unwrap_err();
        (e.param.clone().unwrap_or_default(), e.message)
    }

    #[test]
    fn chat_requests_read_openai_fields_and_defaults() {
        let r = chat(&json!({
            "model": "m",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}
            ],
            "max_completion_tokens": 7, "max_tokens": 99, "temperature": 0, "top_p": 0.9, "stop": ["\n", "END"],
            "seed": 5, "stream": true, "stream_options": {"include_usage": true}, "presence_penalty": 0.5,
            "frequency_penalty": -0.5, "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1, "n": 1, "user": "x",
            "min_tokens": 3
        }))
        .unwrap();
        let Prompt::Messages(m) = &r.prompts[0] else {
            panic!()
        };
        assert_eq!(
            (m[0].role.as_str(), m[1].content.as_str()),
            ("system", "Hi there")
        );
        let g = &r.generation;
        assert_eq!((g.max_new_tokens, g.min_new_tokens), (7, 3));
        assert_eq!(
            (g.temperature, g.top_p, g.top_k, g.min_p),
            (0.0, Some(0.9), Some(40), Some(0.05))
        );
        assert_eq!(
            (
                g.presence_penalty,
                g.frequency_penalty,
                g.repetition_penalty,
                g.seed
            ),
            (0.5, -0.5, 1.1, 5)
        );
        assert_eq!(g.stop_strings, vec!["\n", "END"]);
        assert!(r.stream && r.include_usage);
        let d =
            chat(&json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})).unwrap();
        assert_eq!(
            (d.generation.max_new_tokens, d.generation.temperature),
            (DEFAULT_CHAT_TOKENS, 1.0)
        );
    }

    #[test]
    fn every_bad_field_is_a_400_naming_it() {
        let user = json!([{"role": "user", "content": "x"}]);
        for (body, expected) in [
            (json!({"messages": user}), "model"),
            (json!({"model": "m"}), "messages"),
            (json!({"model": "m", "messages": []}), "messages"),
            (
                json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
                "messages[0].content[0]",
            ),
            (
                json!({"model": "m", "messages": user, "temperature": 3}),
                "temperature",
            ),
            (json!({"model": "m", "messages": user, "top_p": 0}), "top_p"),
            (
                json!({"model": "m", "messages": user, "max_tokens": 0}),
                "max_tokens",
            ),
            (json!({"model": "m", "messages": user, "n": 2}), "n"),
            (
                json!({"model": "m", "messages": user, "stop": ["a", "b", "c", "d", "e"]}),
                "stop",
            ),
            (
                json!({"model": "m", "messages": user, "presence_penalty": 2.5}),
                "presence_penalty",
            ),
            (
                json!({"model": "m", "messages": user, "frequency_penalty": "x"}),
                "frequency_penalty",
            ),
            (json!({"model": "m", "messages": user, "seed": "x"}), "seed"),
            (
                json!({"model": "m", "messages": user, "stream": "yes"}),
                "stream",
            ),
            (
                json!({"model": "m", "messages": user, "stream_options": {"include_usage": true}}),
                "stream_options",
            ),
            (
                json!({"model": "m", "messages": user, "logprobs": true}),
                "logprobs",
            ),
            (
                json!({"model": "m", "messages": user, "tools": [{"type": "function"}]}),
                "tools",
            ),
            (
                json!({"model": "m", "messages": user, "response_format": {"type": "json_object"}}),
                "response_format",
            ),
            (
                json!({"model": "m", "messages": user, "min_p": 1.5}),
                "min_p",
            ),
            (
                json!({"model": "m", "messages": user, "repetition_penalty": 0}),
                "repetition_penalty",
            ),
        ] {
            let (p, message) = param(body);
            assert_eq!(p, expected, "{message}");
            assert!(
                message.contains(&format!(
                    "`{}",
                    expected.split('[').next().unwrap_or(expected)
                )),
                "{message}"
            );
        }
        let e = completion(&json!({"model": "m", "prompt": 3})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("prompt"));
        let r = completion(&json!({"model": "m", "prompt": ["a", "b"]})).unwrap();
        assert_eq!(
            (r.prompts.len(), r.generation.max_new_tokens),
            (2, DEFAULT_COMPLETION_TOKENS)
        );
    }
}
