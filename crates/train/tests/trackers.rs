//! `logging.logger: MLflow` against a real `mlflow server` started on loopback (skipped with a message where
//! MLflow is not installed; `.ci/run` installs it and sets `FERROTUNE_REQUIRE_MLFLOW=1`, which turns the skip into
//! a failure), and a tracking server that is down.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{experiment, train};

/// The `mlflow` command: `FERROTUNE_MLFLOW`, the reference venv's, or one on `PATH`.
fn mlflow_command() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FERROTUNE_MLFLOW") {
        return Some(path.into());
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/mlflow");
    if venv.is_file() {
        return Some(venv);
    }
    Command::new("mlflow")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .filter(|s| s.success())
        .map(|_| PathBuf::from("mlflow"))
}

/// A `mlflow server` on a free loopback port, its SQLite store and artifacts in `dir`; stopped (with its
/// workers: its own process group) when dropped.
struct Server {
    child: Child,
    uri: String,
}

impl Server {
    fn start(mlflow: &Path, dir: &Path) -> Server {
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("mlflow-server.log")).unwrap();
        let child = Command::new(mlflow)
            .args([
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--workers",
                "1",
            ])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let server = Server {
            child,
            uri: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        while ureq::get(&format!("{}/health", server.uri)).call().is_err() {
            assert!(
                Instant::now() < deadline,
                "mlflow server did not start: {}",
                std::fs::read_to_string(dir.join("mlflow-server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        server
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let mut response = ureq::get(&format!("{}/api/2.0/mlflow/{path}", self.uri))
            .query_pairs(query.iter().copied())
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let mut response = ureq::post(&format!("{}/api/2.0/mlflow/{path}", self.uri))
            .content_type("application/json")
            .send(body.to_string())
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    }

    /// `(step, value)` of every logged value of `metric`.
    fn history(&self, run_id: &str, metric: &str) -> Vec<(u64, f64)> {
        let h = self.get(
            "metrics/get-history",
            &[("run_id", run_id), ("metric_key", metric)],
        );
        let mut points: Vec<(u64, f64)> = h["metrics"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|p| (p["step"].as_u64().unwrap(), p["value"].as_f64().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        points.sort_by_key(|p| p.0);
        points
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn mlflow_gets_the_params_metrics_artifacts_and_outcome_and_a_resumed_run_continues_its_run() {
    let Some(mlflow) = mlflow_command() else {
        assert!(
            std::env::var_os("FERROTUNE_REQUIRE_MLFLOW").is_none(),
            "FERROTUNE_REQUIRE_MLFLOW is set, but no `mlflow` command was found"
        );
        eprintln!(
            "skipped: no `mlflow` command (`.venv/bin/pip install -r tools/requirements-ci.txt`, or set FERROTUNE_MLFLOW)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&mlflow, dir.path());
    let cfg = experiment(
        dir.path(),
        "tracked",
        &[
            ("logging.logger", "MLflow"),
            ("logging.mlflow_tracking_uri", &server.uri),
            ("logging.mlflow_experiment_name", "ferrotune-tests"),
            ("training.evaluation_epochs", "0.5"),
        ],
    );
    // Stopped after step 2, then resumed to the end: one MLflow run throughout.
    let first = train(&cfg, false, Some(2));
    assert_eq!(first.summary.status.name(), "stopped");
    let run = ferrotune_home::RunDir::new(cfg.output_dir());
    let saved: Value = serde_json::from_slice(&std::fs::read(run.mlflow_run()).unwrap()).unwrap();
    let run_id = saved["run_id"].as_str().unwrap().to_string();
    let info = server.get("runs/get", &[("run_id", &run_id)]);
    assert_eq!(info["run"]["info"]["status"], "KILLED", "{info}");

    let second = train(&cfg, true, None);
    assert_eq!(second.summary.status.name(), "finished");
    let logs = second.logs().join("\n");
    assert!(logs.contains("MLflow: continuing run"), "{logs}");
    let run_info = server.get("runs/get", &[("run_id", &run_id)]);
    let info = &run_info["run"]["info"];
    assert_eq!(info["status"], "FINISHED", "{info}");
    assert_eq!(info["run_name"], "tracked");
    let experiment = server.get(
        "experiments/get-by-name",
        &[("experiment_name", "ferrotune-tests")],
    );
    assert_eq!(
        info["experiment_id"],
        experiment["experiment"]["experiment_id"]
    );
    let searched = server.post(
        "runs/search",
        serde_json::json!({ "experiment_ids": [info["experiment_id"]] }),
    );
    assert_eq!(
        searched["runs"].as_array().map(Vec::len),
        Some(1),
        "{searched}"
    );

    // Params: every setting, as the run's cfg.yaml has it.
    let params: std::collections::HashMap<String, String> = run_info["run"]["data"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().into(),
                p["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = cfg.flat_values();
    assert_eq!(params.len(), expected.len());
    for (key, value) in &expected {
        assert_eq!(&params[*key], value, "{key}");
    }
    assert_eq!(params["logging.logger"], "MLflow");
    assert_eq!(params["experiment_name"], "tracked");

    // Metrics: every step's loss of both sittings, as the run reported them; evaluations too.
    let losses: Vec<(u64, f64)> = first
        .events
        .iter()
        .chain(&second.events)
        .filter_map(|e| match e {
            ferrotune_train::events::Event::Step { step, loss, .. } => Some((*step, *loss)),
            _ => None,
        })
        .collect();
    let logged = server.history(&run_id, "train/loss");
    assert_eq!(logged.len(), losses.len(), "{logged:?}");
    for ((s, l), (ls, ll)) in losses.iter().zip(&logged) {
        assert_eq!(s, ls);
        assert!(
            (l - ll).abs() <= 1e-12 * l.abs().max(1.0),
            "step {s}: {l} vs {ll}"
        );
    }
    assert_eq!(logged.last().map(|p| p.0), Some(second.summary.steps));
    assert!(!server.history(&run_id, "train/learning_rate").is_empty());
    let validation = server.history(&run_id, "validation/loss");
    assert_eq!(
        validation.len(),
        first.validation_losses().len() + second.validation_losses().len()
    );

    // Artifacts: cfg.yaml and the adapter, byte for byte.
    let listed = server.get("artifacts/list", &[("run_id", &run_id)]);
    let names: Vec<&str> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"cfg.yaml") && names.contains(&"adapter"),
        "{listed}"
    );
    let stored = dir
        .path()
        .join("artifacts")
        .join(info["experiment_id"].as_str().unwrap())
        .join(&run_id)
        .join("artifacts");
    assert_eq!(
        std::fs::read(stored.join("cfg.yaml")).unwrap(),
        std::fs::read(run.config()).unwrap()
    );
    for file in ["adapter_model.safetensors", "adapter_config.json"] {
        assert_eq!(
            std::fs::read(stored.join("adapter").join(file)).unwrap(),
            std::fs::read(run.adapter().join(file)).unwrap(),
            "{file}"
        );
    }
    assert!(
        logs.contains(&format!("MLflow: run {run_id} finished")),
        "{logs}"
    );
}

#[test]
fn a_tracking_server_that_is_down_never_fails_or_stalls_the_run_and_is_reported_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = experiment(
        dir.path(),
        "untracked",
        &[
            ("logging.logger", "MLflow"),
            (
                "logging.mlflow_tracking_uri",
                &format!("http://127.0.0.1:{port}"),
            ),
        ],
    );
    let started = Instant::now();
    let ran = train(&cfg, false, None);
    assert_eq!(ran.summary.status.name(), "finished");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the run waited on the tracker"
    );
    let logs = ran.logs();
    let down: Vec<&&str> = logs
        .iter()
        .filter(|l| l.contains("MLflow is not answering"))
        .collect();
    assert_eq!(down.len(), 1, "{logs:#?}");
    assert!(
        down[0].contains(&format!("127.0.0.1:{port}")),
        "{}",
        down[0]
    );
    let end = logs
        .iter()
        .find(|l| l.contains("did not answer at the end of the run"))
        .unwrap_or_else(|| panic!("{logs:#?}"));
    assert!(end.contains("metric values"), "{end}");
}
