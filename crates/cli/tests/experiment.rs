//! `ferrotune experiment …` through the real binary, each test in its own temporary `FERROTUNE_HOME`, training
//! the tiny llama fixture of `crates/model/tests/fixtures` for a few steps: two processes queueing at once, a
//! runner killed with -9 (alone, and with its training process), stop and resume, grids and the other commands,
//! the registry rebuilt from the folders, and a failed checkpoint write that keeps the previous checkpoint.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Long enough for a slow, shared machine; runs take seconds.
const TIMEOUT: Duration = Duration::from_secs(300);

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let h = Home {
            dir: tempfile::tempdir().unwrap(),
        };
        let rows: Vec<Value> = (0..40)
            .map(|i| serde_json::json!({"instruction": format!("Add {} and {}.", i, 2 * i), "input": "", "output": format!("{}", 3 * i)}))
            .collect();
        std::fs::write(h.data(), serde_json::to_string(&rows).unwrap()).unwrap();
        h
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data.json")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrotune"));
        cmd.args(args).env("FERROTUNE_HOME", self.root());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    /// An experiment file training the fixture on the arithmetic data; `training` adds lines to `training:`.
    fn config(&self, name: &str, training: &str) -> String {
        let text = format!(
            "llm_backbone: {backbone}\nexperiment_name: {name}\n\
             dataset:\n  train_dataframe: {data}\n  system_column: None\n  validation_size: 0.1\n\
             training:\n  learning_rate: 0.01\n  batch_size: 4\n  lora_r: 2\n{training}\
             environment:\n  seed: 7\nprediction:\n  max_length_inference: 4\n",
            backbone = fixture().display(),
            data = self.data().display(),
        );
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn list(&self) -> Vec<Value> {
        serde_json::from_str(&self.ok(&["experiment", "list", "--json"])).unwrap()
    }

    fn show(&self, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["experiment", "show", name, "--json"])).unwrap()
    }

    fn folder(&self, name: &str) -> PathBuf {
        self.root().join("experiments").join(name)
    }

    /// Waits until every listed experiment has ended, checking at each look that at most one runs (the CPU is
    /// one device).
    fn wait_all_done(&self) -> Vec<Value> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let all = self.list();
            let running = all.iter().filter(|e| e["status"] == "running").count();
            assert!(running <= 1, "two experiments run at once: {all:?}");
            if all
                .iter()
                .all(|e| ["finished", "failed", "stopped"].contains(&e["status"].as_str().unwrap()))
            {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "experiments did not end: {all:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until experiment `name` is running and has written a checkpoint; returns its training pid.
    fn wait_checkpoint(&self, name: &str) -> u32 {
        let dir = self.folder(name);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let status = read_json(&dir.join("status.json"));
            let pid = status
                .as_ref()
                .filter(|s| s["status"] == "running")
                .and_then(|s| s["pid"].as_u64());
            if let (Some(pid), true) = (pid, dir.join("checkpoint/state.json").is_file()) {
                return pid as u32;
            }
            assert!(
                Instant::now() < deadline,
                "no checkpoint of `{name}` appeared"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pid in `runner.lock` (empty once a runner has exited normally).
    fn runner_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.root().join("runner.lock")).ok()?;
        text.split_whitespace().next()?.parse().ok()
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/llama3_rope")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn kill9(pid: u32) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
}

/// Waits until `pid` is gone (reaped by whoever inherited it).
fn wait_gone(pid: u32) {
    let deadline = Instant::now() + TIMEOUT;
    while Path::new(&format!("/proc/{pid}")).exists() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
        {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn by_name<'a>(all: &'a [Value], name: &str) -> &'a Value {
    all.iter().find(|e| e["name"] == name).unwrap()
}

#[test]
fn two_processes_start_at_once_both_run_one_at_a_time() {
    let h = Home::new();
    let data = h.data();
    h.ok(&[
        "dataset",
        "import",
        data.to_str().unwrap(),
        "--name",
        "arith",
    ]);
    let (a, b) = (
        h.config("a", "  epochs: 1\n"),
        h.config("b", "  epochs: 1\n"),
    );
    let spawn = |cfg: &str| {
        h.command(&["experiment", "start", cfg, "--dataset", "arith"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pa, pb) = (spawn(&a), spawn(&b));
    for o in [
        pa.wait_with_output().unwrap(),
        pb.wait_with_output().unwrap(),
    ] {
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("queued `"));
    }
    let all = h.wait_all_done();
    assert_eq!(all.len(), 2);
    for e in &all {
        assert_eq!(e["status"], "finished", "{e}");
        assert_eq!(e["dataset"], "arith");
        assert_eq!(e["progress"], 1.0);
        assert_eq!(e["step"], 9, "1 epoch of 9 batches of 4");
        assert_eq!(e["metric_name"], "Perplexity");
        assert!(e["best_metric"].as_f64().is_some());
    }
    let (ea, eb) = (by_name(&all, "a"), by_name(&all, "b"));
    let end = |e: &Value| e["finished"].as_u64().unwrap();
    let start = |e: &Value| e["started"].as_u64().unwrap();
    assert!(end(ea) <= start(eb) || end(eb) <= start(ea), "{ea} {eb}");
    let cfg = std::fs::read_to_string(h.folder("a").join("cfg.yaml")).unwrap();
    assert!(cfg.contains("datasets/arith/train.jsonl"), "{cfg}");
    let shown = h.ok(&["experiment", "show", "a"]);
    assert!(
        shown.contains("status:      finished") && shown.contains("train loss:  "),
        "{shown}"
    );
    let logs = h.ok(&["experiment", "logs", "a", "--follow"]);
    assert!(logs.contains("\"event\":\"step\""), "{logs}");
    // The downloads the studio lists, from the command line: the adapter zip holds the PEFT files.
    let zip_path = h.dir.path().join("a.zip");
    let saved = h.ok(&[
        "experiment",
        "download",
        "a",
        "adapter",
        "--output",
        zip_path.to_str().unwrap(),
    ]);
    assert!(saved.contains("LoRA adapter"), "{saved}");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    assert!(zip.by_name("adapter/adapter_config.json").is_ok());
    assert!(zip.by_name("adapter/adapter_model.safetensors").is_ok());
    let o = h.run(&["experiment", "download", "a", "weights"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("no download `weights`") && err.contains("config, logs, predictions, adapter"),
        "{err}"
    );
}

#[test]
fn a_runner_killed_with_its_training_is_failed_and_resume_finishes() {
    let h = Home::new();
    let cfg = h.config("long", "  epochs: 30\n  evaluation_epochs: 1\n");
    h.ok(&["experiment", "start", &cfg]);
    let train = h.wait_checkpoint("long");
    let runner = h.runner_pid().unwrap();
    kill9(runner);
    kill9(train);
    wait_gone(train);
    wait_gone(runner);
    let e = h.show("long");
    assert_eq!(e["status"], "failed", "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.starts_with("process ended unexpectedly"), "{msg}");
    assert!(msg.contains("last log lines:"), "{msg}");
    assert!(e["pid"].is_null());
    let out = h.ok(&["experiment", "resume", "long"]);
    assert!(out.contains("resume"), "{out}");
    let all = h.wait_all_done();
    let e = by_name(&all, "long");
    assert_eq!(e["status"], "finished", "{e}");
    assert_eq!(e["step"], 270);
    assert_eq!(e["progress"], 1.0);
}

#[test]
fn a_runner_killed_alone_is_replaced_and_its_run_adopted_stopped_and_resumed() {
    let h = Home::new();
    let first = h.config("first", "  epochs: 30\n  evaluation_epochs: 1\n");
    let second = h.config("second", "  epochs: 1\n");
    h.ok(&["experiment", "start", &first]);
    h.ok(&["experiment", "start", &second]);
    let train = h.wait_checkpoint("first");
    let runner = h.runner_pid().unwrap();
    kill9(runner);
    wait_gone(runner);
    // The training process outlives its runner, so the experiment still runs; the next look at the queue
    // starts a new runner for the queued one, which adopts the running one and waits for it.
    let all = h.list();
    assert_eq!(by_name(&all, "first")["status"], "running");
    assert_eq!(by_name(&all, "second")["status"], "queued");
    let deadline = Instant::now() + TIMEOUT;
    while h.runner_pid() == Some(runner) {
        assert!(Instant::now() < deadline, "no new runner");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = h.run(&["experiment", "delete", "first"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("stop it first"), "{}", stderr(&o));
    let out = h.ok(&["experiment", "stop", "first"]);
    assert!(out.contains(&format!("process {train}")), "{out}");
    let all = h.wait_all_done();
    let (f, s) = (by_name(&all, "first"), by_name(&all, "second"));
    assert_eq!(f["status"], "stopped", "{f}");
    assert_eq!(s["status"], "finished", "{s}");
    assert!(
        f["finished"].as_u64().unwrap() <= s["started"].as_u64().unwrap(),
        "the second waited for the adopted run: {f} {s}"
    );
    h.ok(&["experiment", "resume", "first"]);
    let all = h.wait_all_done();
    let f = by_name(&all, "first");
    assert_eq!(
        (f["status"].as_str(), f["step"].as_u64()),
        (Some("finished"), Some(270))
    );
}

#[test]
fn grid_dry_run_lifecycle_commands_and_compare() {
    let h = Home::new();
    let grid = h.config("g", "  epochs: 1\n  lora_r: [2, 4]\n");
    std::fs::write(
        &grid,
        std::fs::read_to_string(&grid)
            .unwrap()
            .replace("  lora_r: 2\n", "")
            .replacen(
                "experiment_name: g\n",
                "experiment_name: g\ngrid_search: true\n",
                1,
            ),
    )
    .unwrap();
    let out = h.ok(&[
        "experiment",
        "start",
        &grid,
        "--dry-run",
        "--training.learning_rate",
        "[0.01, 0.02]",
    ]);
    assert_eq!(
        out,
        "4 experiment(s):\ng-lr0.01-r2\ng-lr0.01-r4\ng-lr0.02-r2\ng-lr0.02-r4\n"
    );
    assert!(h.list().is_empty(), "a dry run registers nothing");
    h.ok(&["experiment", "start", &grid]);
    // The second is still queued while the first runs (or waits): take it out of the queue.
    let out = h.ok(&["experiment", "stop", "g-r4"]);
    assert!(out.contains("out of the queue"), "{out}");
    let all = h.wait_all_done();
    assert_eq!(by_name(&all, "g-r2")["status"], "finished");
    assert_eq!(by_name(&all, "g-r4")["status"], "stopped");
    let o = h.run(&["experiment", "resume", "g-r4"]);
    assert!(
        stderr(&o).contains("no checkpoint") && stderr(&o).contains("restart g-r4"),
        "{}",
        stderr(&o)
    );
    h.ok(&["experiment", "restart", "g-r4"]);
    h.wait_all_done();
    let cmp = h.ok(&["experiment", "compare", "g-r2", "g-r4"]);
    assert!(cmp.contains("settings that differ:"), "{cmp}");
    assert!(
        cmp.lines()
            .any(|l| l.starts_with("training.lora_r") && l.contains('2') && l.contains('4')),
        "{cmp}"
    );
    assert!(
        !cmp.contains("training.batch_size"),
        "only differences: {cmp}"
    );
    assert!(cmp.contains("last train loss"), "{cmp}");
    h.ok(&["experiment", "rename", "g-r4", "wide"]);
    assert!(h.folder("wide").join("adapter").is_dir() && !h.folder("g-r4").exists());
    let cfg = std::fs::read_to_string(h.folder("wide").join("cfg.yaml")).unwrap();
    assert!(cfg.contains("experiment_name: wide"), "{cfg}");
    let o = h.run(&["experiment", "show", "g-r"]);
    assert!(
        stderr(&o).contains("no experiment named `g-r`"),
        "{}",
        stderr(&o)
    );
    h.ok(&["experiment", "delete", "wide"]);
    assert!(!h.folder("wide").exists());
    let names: Vec<Value> = h.list().iter().map(|e| e["name"].clone()).collect();
    assert_eq!(names, ["g-r2"]);
}

#[test]
fn a_deleted_registry_is_rebuilt_from_the_experiment_folders() {
    let h = Home::new();
    h.ok(&["experiment", "start", &h.config("one", "  epochs: 1\n")]);
    let two = h.config("two", "  epochs: 1\n");
    h.ok(&[
        "experiment",
        "start",
        &two,
        "--training.learning_rate",
        "0.02",
    ]);
    let before = h.wait_all_done();
    let compared = h.ok(&["experiment", "compare", "one", "two"]);
    assert!(
        compared
            .lines()
            .any(|l| l.starts_with("training.learning_rate") && l.contains("0.02")),
        "{compared}"
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(h.root().join(format!("registry.sqlite{suffix}")));
    }
    let out = h.ok(&["doctor"]);
    assert!(
        out.contains("experiments not in the registry: one, two"),
        "{out}"
    );
    let out = h.ok(&["doctor", "--rebuild-index"]);
    assert!(out.contains("2 experiment(s): one, two"), "{out}");
    let after = h.list();
    for (b, a) in before.iter().zip(&after) {
        for key in [
            "name",
            "status",
            "progress",
            "step",
            "total_steps",
            "metric_name",
            "best_metric",
            "last_metric",
        ] {
            assert_eq!(a[key], b[key], "{key} of {}", b["name"]);
        }
    }
    assert_eq!(
        h.ok(&["experiment", "compare", "one", "two"]),
        compared,
        "metrics are rebuilt too"
    );
    assert!(h.ok(&["doctor"]).ends_with("ok\n"));
}

#[test]
fn a_failed_checkpoint_write_keeps_the_previous_checkpoint() {
    // A full disk is simulated per process: RLIMIT_FSIZE makes any write past the limit fail (EFBIG, with
    // SIGXFSZ ignored), which takes the same error path in the checkpoint writer as ENOSPC would.
    let h = Home::new();
    let cfg = h.config("disk", "  epochs: 30\n  evaluation_epochs: 1\n");
    let out = h.dir.path().join("out");
    let run = |limit: Option<u64>, resume: bool| {
        let mut cmd = h.command(&["--quiet", "train"]);
        if resume {
            cmd.arg("--resume").arg(out.join("disk"));
        } else {
            cmd.args(["--config", &cfg, "--output_directory"])
                .arg(out.join("{experiment_name}"));
        }
        if let Some(bytes) = limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit and signal are async-signal-safe and touch no memory of the parent.
            unsafe {
                cmd.pre_exec(move || {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let lim = libc::rlimit {
                        rlim_cur: bytes,
                        rlim_max: bytes,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        cmd
    };
    // A first run, stopped gracefully after its first checkpoint (SIGTERM writes one more).
    let mut child = run(None, false).spawn().unwrap();
    let dir = out.join("disk");
    let deadline = Instant::now() + TIMEOUT;
    while !dir.join("checkpoint/state.json").is_file() {
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert_eq!(
        read_json(&dir.join("status.json")).unwrap()["status"],
        "stopped"
    );
    let state = std::fs::read(dir.join("checkpoint/state.json")).unwrap();
    let adapter = std::fs::read(dir.join("checkpoint/adapter/adapter_model.safetensors")).unwrap();
    // Room for the config and status files, not for a checkpoint's adapter.
    let limit = std::fs::metadata(dir.join("cfg.yaml")).unwrap().len() + 4096;
    assert!(
        adapter.len() as u64 > limit,
        "the adapter ({} bytes) must not fit in {limit}",
        adapter.len()
    );

    let o = run(Some(limit), true).output().unwrap();
    assert!(!o.status.success(), "the checkpoint write must fail");
    // The message names the file that could not be written, says the cause once, and what to do.
    let err = stderr(&o);
    assert!(
        err.contains("cannot write `") && err.contains("adapter_model.safetensors"),
        "{err}"
    );
    assert_eq!(err.matches("File too large").count(), 1, "{err}");
    assert!(err.contains("help: the file outgrew"), "{err}");
    let status = read_json(&dir.join("status.json")).unwrap();
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(
        std::fs::read(dir.join("checkpoint/state.json")).unwrap(),
        state,
        "the previous checkpoint stays"
    );
    assert_eq!(
        std::fs::read(dir.join("checkpoint/adapter/adapter_model.safetensors")).unwrap(),
        adapter
    );
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // With room again, the run resumes from that checkpoint and finishes.
    let o = run(None, true).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read_json(&dir.join("status.json")).unwrap()["status"],
        "finished"
    );
}
