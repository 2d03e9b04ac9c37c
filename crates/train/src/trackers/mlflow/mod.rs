//! `logging.logger: MLflow`: the run logged to an MLflow tracking server over its REST API — the config as params,
//! every scalar per step as metrics, `cfg.yaml` and the adapter as artifacts, the outcome as the run's status.
//!
//! The training thread only hands metrics to a sender thread (a channel send per event). That thread batches them
//! (one request a second at most), and while the server does not answer keeps them (up to [`MAX_BUFFERED`]) and
//! tries again with a growing pause: the failure is logged once, and again once when it answers. A resumed run
//! continues the same MLflow run (`mlflow_run.json` in the run folder).

mod client;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrotune_config::Experiment;
use ferrotune_home::{Event, RunDir, RunStatus};

use self::client::{
    now_millis, param_value, CallResult, Client, Failure, Metric, RemoteRun, MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
};
use super::{scalars, RunEnd, Tracker};

/// Metric values kept while the server does not answer; past it the oldest are dropped (and counted).
pub const MAX_BUFFERED: usize = 200_000;
/// The shortest time between two sends.
const SEND_EVERY: Duration = Duration::from_secs(1);
/// The longest pause between tries while the server does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long the end of a run waits for the last metrics, the artifacts and the run's status to be sent.
const FINISH_TIMEOUT: Duration = Duration::from_secs(300);

/// The tracker the training thread holds.
pub(super) struct Mlflow {
    sender: Sender<Message>,
    notes: Arc<Mutex<Vec<String>>>,
    run: RunDir,
    uri: String,
    experiment: String,
}

enum Message {
    Metrics(Vec<Metric>),
    Finish {
        status: &'static str,
        message: String,
        artifacts: Vec<(String, PathBuf)>,
        reply: Sender<Vec<String>>,
    },
}

impl Mlflow {
    /// Starts the sender thread (no request is made on the caller's thread).
    pub(super) fn start(cfg: &Experiment, run: &RunDir, resume: bool) -> Result<Mlflow, String> {
        let uri = cfg
            .logging
            .mlflow_uri()
            .ok_or("no tracking server: `logging.mlflow_tracking_uri` is empty and `MLFLOW_TRACKING_URI` unset")?;
        let experiment = cfg.logging.mlflow_experiment_name.trim().to_string();
        let notes = Arc::new(Mutex::new(Vec::new()));
        let (sender, receiver) = mpsc::channel();
        let params = cfg
            .flat_values()
            .into_iter()
            .map(|(k, v)| (k.to_string(), param_value(&v)))
            .collect();
        let worker = Worker {
            client: Client::new(&uri),
            experiment: experiment.clone(),
            run_name: cfg.experiment_name.clone(),
            tags: run_tags(cfg, run),
            params,
            params_sent: false,
            saved_run: run.mlflow_run(),
            resume,
            remote: None,
            pending: VecDeque::new(),
            dropped: 0,
            rejected: 0,
            sent: 0,
            down: false,
            refusal_reported: false,
            notes: notes.clone(),
        };
        std::thread::Builder::new()
            .name("mlflow".into())
            .spawn(move || worker.serve(receiver))
            .map_err(|e| format!("cannot start its sender thread: {e}"))?;
        Ok(Mlflow {
            sender,
            notes,
            run: run.clone(),
            uri,
            experiment,
        })
    }

    /// The log line saying where the run goes.
    pub(super) fn describe(&self) -> String {
        format!(
            "MLflow: logging to {} (experiment `{}`)",
            self.uri, self.experiment
        )
    }

    /// `cfg.yaml`, and the adapter's files under `adapter/`.
    fn artifacts(&self) -> Vec<(String, PathBuf)> {
        let mut out = vec![("cfg.yaml".to_string(), self.run.config())];
        if self.run.has_adapter() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(self.run.adapter())
                .map(|d| {
                    d.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            for path in files {
                if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                    out.push((format!("adapter/{name}"), path.clone()));
                }
            }
        }
        out
    }
}

impl Tracker for Mlflow {
    fn name(&self) -> &'static str {
        "MLflow"
    }

    fn record(&mut self, event: &Event) -> Result<(), String> {
        let timestamp = now_millis();
        let metrics: Vec<Metric> = scalars(event)
            .into_iter()
            // JSON has no NaN or infinity; a diverged value is in metrics.jsonl and the log.
            .filter(|(_, value, _)| value.is_finite())
            .map(|(key, value, step)| Metric {
                key,
                value,
                step,
                timestamp,
            })
            .collect();
        if metrics.is_empty() {
            return Ok(());
        }
        self.sender
            .send(Message::Metrics(metrics))
            .map_err(|_| "its sender thread has ended".to_string())
    }

    fn notes(&mut self) -> Vec<String> {
        self.notes
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    fn finish(&mut self, end: &RunEnd) -> Vec<String> {
        let (reply, answer) = mpsc::channel();
        let status = match end.status {
            RunStatus::Finished => "FINISHED",
            RunStatus::Stopped => "KILLED",
            _ => "FAILED",
        };
        let sent = self.sender.send(Message::Finish {
            status,
            message: end.message.to_string(),
            artifacts: if end.status == RunStatus::Finished {
                self.artifacts()
            } else {
                Vec::new()
            },
            reply,
        });
        let mut lines = self.notes();
        match sent.map(|()| answer.recv_timeout(FINISH_TIMEOUT)) {
            Ok(Ok(more)) => lines.extend(more),
            _ => lines.push(format!(
                "warning: MLflow: the last metrics, artifacts and the run's end were not sent to {} within {} s",
                self.uri,
                FINISH_TIMEOUT.as_secs()
            )),
        }
        lines
    }
}

/// Tags MLflow's UI shows: the source, the user, and where the run's folder is.
fn run_tags(cfg: &Experiment, run: &RunDir) -> Vec<(String, String)> {
    let user = std::env::var("USER").unwrap_or_default();
    [
        ("mlflow.source.name", "ferrotune".to_string()),
        ("mlflow.source.type", "LOCAL".to_string()),
        ("mlflow.user", user),
        ("ferrotune.output_dir", run.root().display().to_string()),
        (
            "ferrotune.problem_type",
            cfg.problem_type.as_str().to_string(),
        ),
        ("ferrotune.backbone", cfg.llm_backbone.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What `mlflow_run.json` holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedRun {
    tracking_uri: String,
    #[serde(flatten)]
    run: RemoteRun,
}

/// The sender thread's state.
struct Worker {
    client: Client,
    experiment: String,
    run_name: String,
    tags: Vec<(String, String)>,
    params: Vec<(String, String)>,
    params_sent: bool,
    saved_run: PathBuf,
    resume: bool,
    remote: Option<RemoteRun>,
    pending: VecDeque<Metric>,
    dropped: u64,
    rejected: u64,
    sent: u64,
    /// The last try failed (its failure was logged).
    down: bool,
    refusal_reported: bool,
    notes: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    fn serve(mut self, messages: Receiver<Message>) {
        let mut next_try = Instant::now();
        let mut backoff = SEND_EVERY;
        loop {
            match messages.recv_timeout(SEND_EVERY) {
                Ok(Message::Metrics(m)) => self.buffer(m),
                Ok(Message::Finish {
                    status,
                    message,
                    artifacts,
                    reply,
                }) => {
                    let lines = self.finish(status, &message, &artifacts);
                    let _ = reply.send(lines);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The run ended without a finish (its thread unwound): send what is there, once.
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.sync();
                    return;
                }
            }
            if Instant::now() < next_try || (self.remote.is_some() && self.pending.is_empty()) {
                continue;
            }
            match self.sync() {
                Ok(()) => {
                    backoff = SEND_EVERY;
                    next_try = Instant::now() + SEND_EVERY;
                }
                Err(failure) => {
                    self.report_down(&failure);
                    next_try = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn note(&self, line: String) {
        if let Ok(mut notes) = self.notes.lock() {
            notes.push(line);
        }
    }

    fn buffer(&mut self, metrics: Vec<Metric>) {
        self.pending.extend(metrics);
        while self.pending.len() > MAX_BUFFERED {
            self.pending.pop_front();
            self.dropped += 1;
        }
    }

    fn report_down(&mut self, failure: &Failure) {
        if !self.down {
            self.down = true;
            self.note(format!(
                "warning: MLflow is not answering ({}); its metrics are kept and sent when it answers, training goes on",
                failure.message
            ));
        }
    }

    /// Opens the run when needed and sends the params and every buffered metric. A refused batch is dropped
    /// (sending it again would not help); a transient failure leaves the rest buffered.
    fn sync(&mut self) -> CallResult<()> {
        let run = match &self.remote {
            Some(run) => run.clone(),
            None => {
                let run = self.open_run()?;
                self.remote = Some(run.clone());
                run
            }
        };
        if !self.params_sent {
            let params = std::mem::take(&mut self.params);
            for chunk in params.chunks(MAX_PARAMS_PER_BATCH) {
                match self.client.log_batch(&run.run_id, &[], chunk, &[]) {
                    Err(f) if f.transient => {
                        self.params = params;
                        return Err(f);
                    }
                    Err(f) => self.refused("params", &f),
                    Ok(()) => {}
                }
            }
            self.params_sent = true;
        }
        while !self.pending.is_empty() {
            let n = self.pending.len().min(MAX_METRICS_PER_BATCH);
            let batch: Vec<Metric> = self.pending.iter().take(n).cloned().collect();
            match self.client.log_batch(&run.run_id, &batch, &[], &[]) {
                Ok(()) => self.sent += n as u64,
                Err(f) if f.transient => return Err(f),
                Err(f) => {
                    self.rejected += n as u64;
                    self.refused("metrics", &f);
                }
            }
            self.pending.drain(..n);
        }
        if self.down {
            self.down = false;
            self.note(format!(
                "MLflow answers again; {} metric values sent so far",
                self.sent
            ));
        }
        Ok(())
    }

    fn refused(&mut self, what: &str, failure: &Failure) {
        if !self.refusal_reported {
            self.refusal_reported = true;
            self.note(format!(
                "warning: MLflow refused {what}: {}; they are dropped",
                failure.message
            ));
        }
    }

    /// The run to log into: the saved one when resuming (if the server still has it), else a new one.
    fn open_run(&mut self) -> CallResult<RemoteRun> {
        if self.resume {
            let saved = std::fs::read(&self.saved_run)
                .ok()
                .and_then(|b| serde_json::from_slice::<SavedRun>(&b).ok())
                .filter(|s| s.tracking_uri == self.client.base());
            if let Some(saved) = saved {
                if let Some(run) = self.client.run(&saved.run.run_id)? {
                    self.client.set_status(&run.run_id, "RUNNING")?;
                    self.note(format!(
                        "MLflow: continuing run {}",
                        self.client.run_page(&run)
                    ));
                    return Ok(run);
                }
            }
        }
        let experiment = self.client.experiment_id(&self.experiment)?;
        let run = self
            .client
            .create_run(&experiment, &self.run_name, &self.tags)?;
        let saved = SavedRun {
            tracking_uri: self.client.base().to_string(),
            run: run.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec_pretty(&saved) {
            if let Err(e) = ferrotune_home::atomic::write(&self.saved_run, &bytes) {
                self.note(format!(
                    "warning: cannot write {} ({e}); a resumed run starts a new MLflow run",
                    self.saved_run.display()
                ));
            }
        }
        self.note(format!("MLflow: run {}", self.client.run_page(&run)));
        Ok(run)
    }

    /// The last try: buffered metrics, the artifacts, the message as a tag, and the run's status.
    fn finish(
        &mut self,
        status: &str,
        message: &str,
        artifacts: &[(String, PathBuf)],
    ) -> Vec<String> {
        let mut lines = Vec::new();
        if let Err(f) = self.sync() {
            self.report_down(&f);
            lines.extend(self.take_notes());
            lines.push(format!(
                "warning: MLflow at {} did not answer at the end of the run ({}); {} metric values, the artifacts \
                 and the run's status were not sent",
                self.client.base(),
                f.message,
                self.pending.len()
            ));
            return lines;
        }
        let Some(run) = self.remote.clone() else {
            return lines;
        };
        let uploaded = self.upload(&run, artifacts, &mut lines);
        if !message.is_empty() {
            let tag = [("ferrotune.status_message".to_string(), message.to_string())];
            if let Err(f) = self.client.log_batch(&run.run_id, &[], &[], &tag) {
                lines.push(format!(
                    "warning: MLflow: the status message was not sent: {}",
                    f.message
                ));
            }
        }
        if let Err(f) = self.client.set_status(&run.run_id, status) {
            lines.push(format!(
                "warning: MLflow: the run's status was not set: {}",
                f.message
            ));
        }
        let mut lost = Vec::new();
        if self.dropped > 0 {
            lost.push(format!(
                "{} dropped while the server was down",
                self.dropped
            ));
        }
        if self.rejected > 0 {
            lost.push(format!("{} refused", self.rejected));
        }
        lines.splice(0..0, self.take_notes());
        lines.push(format!(
            "MLflow: run {} {} — {} metric values{}, {uploaded} of {} artifacts",
            run.run_id,
            status.to_lowercase(),
            self.sent,
            if lost.is_empty() {
                String::new()
            } else {
                format!(" ({})", lost.join(", "))
            },
            artifacts.len()
        ));
        lines
    }

    fn take_notes(&self) -> Vec<String> {
        self.notes
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    /// Sends the artifacts through the server's proxy, or copies them where a local server keeps them; the
    /// number sent.
    fn upload(
        &self,
        run: &RemoteRun,
        artifacts: &[(String, PathBuf)],
        lines: &mut Vec<String>,
    ) -> usize {
        let local = local_artifact_root(&run.artifact_uri, self.client.base());
        if artifacts.is_empty() {
            return 0;
        }
        if !run.artifact_uri.starts_with("mlflow-artifacts:") && local.is_none() {
            lines.push(format!(
                "MLflow: artifacts not uploaded: the server keeps them at `{}`, which Ferrotune cannot write \
                 (start `mlflow server` with `--serve-artifacts`, its default)",
                run.artifact_uri
            ));
            return 0;
        }
        let mut uploaded = 0;
        for (relative, path) in artifacts {
            let result = match &local {
                Some(root) => copy_into(root, relative, path),
                None => self.client.upload(&run.artifact_uri, relative, path),
            };
            match result {
                Ok(()) => uploaded += 1,
                Err(f) => lines.push(format!(
                    "warning: MLflow: artifact {relative} not uploaded: {}",
                    f.message
                )),
            }
        }
        uploaded
    }
}

/// The folder of a run's artifacts when the server on this machine keeps them in a local folder (`file:…` or a
/// plain path) instead of proxying them.
fn local_artifact_root(artifact_uri: &str, base: &str) -> Option<PathBuf> {
    let on_this_machine = ["://127.0.0.1", "://localhost", "://[::1]"]
        .iter()
        .any(|host| base.contains(host));
    let path = artifact_uri
        .strip_prefix("file://")
        .or_else(|| artifact_uri.strip_prefix("file:"))
        .unwrap_or(artifact_uri);
    (on_this_machine && path.starts_with('/')).then(|| PathBuf::from(path))
}

fn copy_into(root: &Path, relative: &str, file: &Path) -> CallResult<()> {
    let target = root.join(relative);
    let failure = |e: std::io::Error| Failure {
        transient: false,
        message: format!("cannot copy to {}: {e}", target.display()),
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(failure)?;
    }
    std::fs::copy(file, &target).map(|_| ()).map_err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_copied_only_for_a_server_on_this_machine() {
        assert_eq!(
            local_artifact_root(
                "file:///srv/mlruns/1/abc/artifacts",
                "http://127.0.0.1:5000"
            ),
            Some(PathBuf::from("/srv/mlruns/1/abc/artifacts"))
        );
        assert_eq!(
            local_artifact_root("/srv/mlruns/1/abc/artifacts", "http://localhost:5000"),
            Some(PathBuf::from("/srv/mlruns/1/abc/artifacts"))
        );
        assert_eq!(
            local_artifact_root("/srv/mlruns/1", "http://tracking.example:5000"),
            None
        );
        assert_eq!(
            local_artifact_root("s3://bucket/1/abc", "http://127.0.0.1:5000"),
            None
        );
        assert_eq!(
            local_artifact_root("mlflow-artifacts:/1/abc/artifacts", "http://127.0.0.1:5000"),
            None
        );
    }
}
