//! The few calls of MLflow's tracking REST API (`/api/2.0/mlflow/…`) and its artifact proxy
//! (`/api/2.0/mlflow-artifacts/…`, served by `mlflow server` unless started with `--no-serve-artifacts`).

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

/// Largest batch the server takes in one `runs/log-batch` (MLflow's documented limits).
pub(super) const MAX_METRICS_PER_BATCH: usize = 1000;
/// Params per `runs/log-batch`.
pub(super) const MAX_PARAMS_PER_BATCH: usize = 100;
/// Longest param value MLflow stores.
pub(super) const MAX_PARAM_VALUE: usize = 6000;

/// Why a call failed: `transient` (the server is down, overloaded or slow: try again later) or not (the server
/// refused the request: sending it again does not help).
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) transient: bool,
    pub(super) message: String,
}

impl Failure {
    fn refused(message: impl Into<String>) -> Failure {
        Failure {
            transient: false,
            message: message.into(),
        }
    }
}

pub(super) type CallResult<T> = Result<T, Failure>;

/// One metric value.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Metric {
    pub(super) key: String,
    pub(super) value: f64,
    pub(super) step: i64,
    /// Milliseconds since the Unix epoch.
    pub(super) timestamp: i64,
}

/// A run on the server.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub(super) struct RemoteRun {
    pub(super) run_id: String,
    pub(super) experiment_id: String,
    pub(super) artifact_uri: String,
}

/// A tracking server's address and credentials (MLflow's own variables: `MLFLOW_TRACKING_TOKEN`, or
/// `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`).
pub(super) struct Client {
    base: String,
    agent: ureq::Agent,
    authorization: Option<String>,
}

impl Client {
    pub(super) fn new(base: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_send_request(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .timeout_recv_body(Some(Duration::from_secs(30)))
            .user_agent(concat!("ferrotune/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let authorization = match (
            env("MLFLOW_TRACKING_TOKEN"),
            env("MLFLOW_TRACKING_USERNAME"),
            env("MLFLOW_TRACKING_PASSWORD"),
        ) {
            (Some(token), _, _) => Some(format!("Bearer {token}")),
            (None, Some(user), password) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.unwrap_or_default()))
            )),
            _ => None,
        };
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent,
            authorization,
        }
    }

    /// The server's address.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    fn with_auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(a) => request.header("Authorization", a),
            None => request,
        }
    }

    /// `POST /api/2.0/mlflow/<path>` with a JSON body; the JSON answer.
    fn post(&self, path: &str, body: &Value) -> CallResult<Value> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let request = self
            .with_auth(self.agent.post(&url))
            .content_type("application/json");
        answer(&url, request.send(body.to_string()))
    }

    /// `GET /api/2.0/mlflow/<path>?<query>`; `None` when the server says the resource does not exist.
    fn get(&self, path: &str, query: &[(&str, &str)]) -> CallResult<Option<Value>> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let request = self
            .with_auth(self.agent.get(&url))
            .query_pairs(query.iter().copied());
        match answer(&url, request.call()) {
            Ok(v) => Ok(Some(v)),
            Err(f) if f.message.contains("RESOURCE_DOES_NOT_EXIST") => Ok(None),
            Err(f) => Err(f),
        }
    }

    /// The id of the experiment `name`, created when missing.
    pub(super) fn experiment_id(&self, name: &str) -> CallResult<String> {
        if let Some(found) = self.get("experiments/get-by-name", &[("experiment_name", name)])? {
            return string_at(&found, &["experiment", "experiment_id"]);
        }
        match self.post("experiments/create", &json!({ "name": name })) {
            Ok(created) => string_at(&created, &["experiment_id"]),
            // Another client created it in between.
            Err(f) if f.message.contains("RESOURCE_ALREADY_EXISTS") => {
                let found = self
                    .get("experiments/get-by-name", &[("experiment_name", name)])?
                    .ok_or_else(|| Failure::refused(format!("experiment `{name}` vanished")))?;
                string_at(&found, &["experiment", "experiment_id"])
            }
            Err(f) => Err(f),
        }
    }

    /// Starts a run named `name` in `experiment_id` with `tags`.
    pub(super) fn create_run(
        &self,
        experiment_id: &str,
        name: &str,
        tags: &[(String, String)],
    ) -> CallResult<RemoteRun> {
        let tags: Vec<Value> = tags
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        let created = self.post(
            "runs/create",
            &json!({
                "experiment_id": experiment_id,
                "run_name": name,
                "start_time": now_millis(),
                "tags": tags,
            }),
        )?;
        run_of(&created["run"]["info"])
    }

    /// The run `run_id`, or `None` when the server has no such (live) run.
    pub(super) fn run(&self, run_id: &str) -> CallResult<Option<RemoteRun>> {
        match self.get("runs/get", &[("run_id", run_id)])? {
            Some(v) if v["run"]["info"]["lifecycle_stage"] != "deleted" => {
                run_of(&v["run"]["info"]).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Sets the run's status (`RUNNING`, `FINISHED`, `FAILED`, `KILLED`); a terminal one with the end time.
    pub(super) fn set_status(&self, run_id: &str, status: &str) -> CallResult<()> {
        let mut body = json!({ "run_id": run_id, "status": status });
        if status != "RUNNING" {
            body["end_time"] = json!(now_millis());
        }
        self.post("runs/update", &body).map(|_| ())
    }

    /// Logs metrics, params and tags in one call (each within MLflow's limits).
    pub(super) fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> CallResult<()> {
        let pair = |(k, v): &(String, String)| json!({ "key": k, "value": v });
        let metrics: Vec<Value> = metrics
            .iter()
            .map(|m| json!({ "key": m.key, "value": m.value, "step": m.step, "timestamp": m.timestamp }))
            .collect();
        let body = json!({
            "run_id": run_id,
            "metrics": metrics,
            "params": params.iter().map(pair).collect::<Vec<_>>(),
            "tags": tags.iter().map(pair).collect::<Vec<_>>(),
        });
        self.post("runs/log-batch", &body).map(|_| ())
    }

    /// Uploads `file` as the artifact `relative` of a run whose artifacts the server proxies
    /// (`artifact_uri` = `mlflow-artifacts:/…`).
    pub(super) fn upload(&self, artifact_uri: &str, relative: &str, file: &Path) -> CallResult<()> {
        let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") else {
            return Err(Failure::refused(format!(
                "the server stores artifacts at `{artifact_uri}`, which it does not proxy"
            )));
        };
        let rest = rest.trim_start_matches('/');
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{rest}/{relative}",
            self.base
        );
        let body = std::fs::File::open(file)
            .map_err(|e| Failure::refused(format!("cannot read {}: {e}", file.display())))?;
        let request = self
            .with_auth(self.agent.put(&url))
            .content_type("application/octet-stream");
        answer(&url, request.send(body)).map(|_| ())
    }

    /// The address of the run in MLflow's web UI.
    pub(super) fn run_page(&self, run: &RemoteRun) -> String {
        format!(
            "{}/#/experiments/{}/runs/{}",
            self.base, run.experiment_id, run.run_id
        )
    }
}

/// The JSON of a 2xx answer; a failure naming the status and MLflow's message otherwise.
fn answer(
    url: &str,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> CallResult<Value> {
    let mut response = response.map_err(|e| Failure {
        transient: true,
        message: format!("{url}: {e}"),
    })?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().map_err(|e| Failure {
        transient: true,
        message: format!("{url}: reading the answer: {e}"),
    })?;
    if (200..300).contains(&status) {
        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
    }
    let detail = serde_json::from_str::<Value>(&text)
        .ok()
        .map(|v| {
            format!(
                "{} {}",
                v["error_code"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_else(|| text.chars().take(200).collect());
    Err(Failure {
        // Overloaded, down behind a proxy, or rate limited: worth another try.
        transient: status >= 500 || status == 429 || status == 408,
        message: format!("{url}: HTTP {status}: {}", detail.trim()),
    })
}

fn string_at(v: &Value, path: &[&str]) -> CallResult<String> {
    path.iter()
        .fold(v, |v, key| &v[*key])
        .as_str()
        .map(String::from)
        .ok_or_else(|| Failure::refused(format!("the server's answer lacks `{}`", path.join("."))))
}

fn run_of(info: &Value) -> CallResult<RemoteRun> {
    Ok(RemoteRun {
        run_id: string_at(info, &["run_id"])?,
        experiment_id: string_at(info, &["experiment_id"])?,
        artifact_uri: string_at(info, &["artifact_uri"])?,
    })
}

/// Milliseconds since the Unix epoch (MLflow's timestamps).
pub(super) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `value` cut to MLflow's param length, at a character boundary.
pub(super) fn param_value(value: &str) -> String {
    if value.len() <= MAX_PARAM_VALUE {
        return value.to_string();
    }
    let mut end = MAX_PARAM_VALUE - 3;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &value[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_param_values_are_cut_at_a_character_boundary() {
        let long = "é".repeat(4000);
        let cut = param_value(&long);
        assert!(cut.len() <= MAX_PARAM_VALUE);
        assert!(cut.ends_with("..."));
        assert_eq!(param_value("short"), "short");
    }

    #[test]
    fn a_server_that_is_not_there_is_a_transient_failure() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let client = Client::new(&format!("http://127.0.0.1:{port}/"));
        let failure = client.experiment_id("x").unwrap_err();
        assert!(failure.transient, "{failure:?}");
        assert!(
            failure.message.contains(&format!("127.0.0.1:{port}")),
            "{failure:?}"
        );
    }
}
