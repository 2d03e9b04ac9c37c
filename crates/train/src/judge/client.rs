//! `POST {base}/chat/completions` with the judge's prompt, greedy, the reply's text back.

use std::time::Duration;

use serde_json::{json, Value};

use super::JudgeSettings;

/// Why a request failed, and whether trying again may help (a timeout, a refused connection, 429 or 5xx).
#[derive(Debug, Clone)]
pub struct RequestFailure {
    pub message: String,
    pub retry: bool,
}

/// An OpenAI-compatible chat-completions client.
pub struct JudgeClient {
    agent: ureq::Agent,
    url: String,
    key: Option<String>,
    model: String,
}

/// Most tokens of a verdict (an explanation and the score line).
const MAX_VERDICT_TOKENS: u32 = 512;

impl JudgeClient {
    pub fn new(settings: &JudgeSettings) -> JudgeClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            .timeout_connect(Some(settings.timeout.min(Duration::from_secs(10))))
            .user_agent(concat!("ferrotune/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        JudgeClient {
            agent,
            url: format!("{}/chat/completions", settings.api_base),
            key: settings.api_key.clone(),
            model: settings.model.clone(),
        }
    }

    /// The reply to `messages` (`(role, content)` pairs).
    pub fn complete(&self, messages: &[(&str, String)]) -> Result<String, RequestFailure> {
        let body = json!({
            "model": self.model,
            "messages": messages.iter().map(|(r, c)| json!({"role": r, "content": c})).collect::<Vec<_>>(),
            "temperature": 0,
            "max_tokens": MAX_VERDICT_TOKENS,
        });
        let mut request = self.agent.post(&self.url).content_type("application/json");
        if let Some(key) = &self.key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = request.send(body.to_string()).map_err(|e| RequestFailure {
            message: format!("{}: {e}", self.url),
            retry: true,
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| RequestFailure {
                message: format!("{}: reading the reply: {e}", self.url),
                retry: true,
            })?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if !(200..300).contains(&status) {
            let detail = json
                .as_ref()
                .and_then(|v| v["error"]["message"].as_str().map(String::from))
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(RequestFailure {
                message: format!("{}: HTTP {status}: {detail}", self.url),
                retry: status >= 500 || status == 429 || status == 408,
            });
        }
        json.as_ref()
            .and_then(|v| v["choices"][0]["message"]["content"].as_str())
            .map(String::from)
            .ok_or_else(|| RequestFailure {
                message: format!(
                    "{}: the reply is not a chat completion: {}",
                    self.url,
                    text.chars().take(200).collect::<String>()
                ),
                retry: true,
            })
    }
}
