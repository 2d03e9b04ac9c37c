//! The experiment runner: one process per home (`runner.lock`), started detached by `experiment start`. It takes
//! queued experiments in order, one at a time per device, runs each as a child `ferrotune train` process, keeps
//! the registry's progress, metrics and status up to date from the run's files, and exits when nothing is queued
//! or running.
//!
//! A runner killed with -9 leaves its training processes running: the next runner adopts them (it follows their
//! files and notices when their pid ends), and readers mark any whose process is gone as ended (see
//! [`crate::tracking::reconcile`]).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::Duration;

use ferrotune_home::Home;

use crate::error::{Error, Result};
use crate::experiment::{self, ExperimentInfo, Status};
use crate::process::{self, ProcessId, RunnerLock};
use crate::registry::Registry;
use crate::tracking::{self, is_alive, Tracker};

/// How the runner runs.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The `ferrotune` binary whose `train` command runs each experiment.
    pub exe: PathBuf,
    /// How often it looks at the registry and the runs' files.
    pub poll: Duration,
}

/// Why the runner returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerExit {
    /// Another runner holds the lock of this home.
    AlreadyRunning,
    /// Nothing is queued or running any more; `started` runs were started.
    Done { started: usize },
}

/// Rounds in a row that may fail (a damaged registry, a full disk) before the runner gives up.
pub const MAX_FAILED_ROUNDS: u32 = 100;

/// A training process this runner started.
struct Run {
    child: Child,
    tracker: Tracker,
}

/// Runs the queue of `home` until it is empty. Errors of one round (a busy registry, a full disk) go to
/// `on_error` and the runner tries again at the next round; after [`MAX_FAILED_ROUNDS`] failed rounds in a row
/// it returns the last error.
pub fn run(
    home: &Home,
    options: &RunnerOptions,
    on_error: &mut dyn FnMut(&Error),
) -> Result<RunnerExit> {
    let Some(mut lock) = RunnerLock::acquire(home, Duration::from_secs(2))? else {
        return Ok(RunnerExit::AlreadyRunning);
    };
    let mut state = State {
        connection: None,
        runs: HashMap::new(),
        adopted: HashMap::new(),
        started: 0,
    };
    let mut failures = 0;
    loop {
        match state.round(home, options) {
            Ok(true) => {}
            Ok(false) => {
                // Nothing to do. Release the lock, then look once more: a command that queued meanwhile either
                // saw the lock held (and so relies on this look) or took it and started another runner.
                lock.release();
                let more = open(home).and_then(|r| {
                    Ok(!r.experiments_with(Status::Queued)?.is_empty()
                        || !r.experiments_with(Status::Running)?.is_empty())
                });
                if !more.unwrap_or(false) {
                    return Ok(RunnerExit::Done {
                        started: state.started,
                    });
                }
                match RunnerLock::acquire(home, Duration::ZERO)? {
                    Some(l) => lock = l,
                    None => {
                        return Ok(RunnerExit::Done {
                            started: state.started,
                        })
                    }
                }
                continue;
            }
            Err(e) => {
                on_error(&e);
                failures += 1;
                if failures >= MAX_FAILED_ROUNDS {
                    // Its training processes keep running; the next runner adopts them.
                    return Err(e);
                }
                std::thread::sleep(options.poll);
                continue;
            }
        }
        failures = 0;
        std::thread::sleep(options.poll);
    }
}

/// Opens the registry afresh (it may have been rebuilt since the last round).
fn open(home: &Home) -> Result<Registry> {
    let _shared = crate::lock_registry(home, false)?;
    Registry::open(&home.registry())
}

struct State {
    /// The open registry and the identity (device, inode) of its file, to reopen it after a rebuild.
    connection: Option<(Registry, (u64, u64))>,
    /// Our children, by output folder (stable across a registry rebuild, unlike row ids).
    runs: HashMap<PathBuf, Run>,
    /// Runs of an earlier runner that are still alive.
    adopted: HashMap<PathBuf, Tracker>,
    started: usize,
}

impl State {
    /// One round: record ended runs, follow running ones, start queued ones on free devices. Whether anything
    /// is still running or queued.
    fn round(&mut self, home: &Home, options: &RunnerOptions) -> Result<bool> {
        let _shared = crate::lock_registry(home, false)?;
        let registry = connect(&mut self.connection, home)?;
        let path = registry.path().to_path_buf();
        let mut ended: HashMap<PathBuf, ExitStatus> = HashMap::new();
        for (dir, run) in &mut self.runs {
            if let Ok(Some(status)) = run.child.try_wait() {
                ended.insert(dir.clone(), status);
            }
        }
        let running = registry.experiments_with(Status::Running)?;
        let (runs, adopted) = (&mut self.runs, &mut self.adopted);
        registry.write(|tx| {
            for info in &running {
                let dir = &info.output_dir;
                if let Some(run) = runs.get_mut(dir) {
                    match ended.get(dir) {
                        Some(status) => {
                            let how = describe(*status);
                            tracking::finish(tx, &path, info, Some(&mut run.tracker), Some(&how))?
                        }
                        None => run.tracker.sync(tx, &path, info.id)?,
                    }
                } else if is_alive(info) {
                    adopted
                        .entry(dir.clone())
                        .or_insert_with(|| Tracker::new(dir))
                        .sync(tx, &path, info.id)?;
                } else {
                    tracking::finish(tx, &path, info, adopted.get_mut(dir), None)?;
                    adopted.remove(dir);
                }
            }
            Ok(())
        })?;
        for dir in ended.keys() {
            self.runs.remove(dir);
        }
        let running = registry.experiments_with(Status::Running)?;
        self.adopted
            .retain(|dir, _| running.iter().any(|e| e.output_dir == *dir));
        let mut busy: HashSet<String> = running.iter().map(|e| e.device.clone()).collect();
        let queued = registry.experiments_with(Status::Queued)?;
        for info in &queued {
            if busy.contains(&info.device) {
                continue;
            }
            if let Some(run) = launch(registry, home, options, info)? {
                busy.insert(info.device.clone());
                self.runs.insert(info.output_dir.clone(), run);
                self.started += 1;
            }
        }
        Ok(!running.is_empty() || !queued.is_empty() || !self.runs.is_empty())
    }
}

/// The registry, kept open between rounds and opened again when its file was replaced (`rebuild_index` swaps
/// in a new file while it holds the registry lock exclusively, so under the shared lock the check is exact).
fn connect<'a>(
    slot: &'a mut Option<(Registry, (u64, u64))>,
    home: &Home,
) -> Result<&'a mut Registry> {
    use std::os::unix::fs::MetadataExt;
    let path = home.registry();
    let identity = || std::fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()));
    let current = identity();
    if slot.as_ref().map(|(_, id)| *id) != current || current.is_none() {
        *slot = None;
    }
    let entry = match slot.take() {
        Some(entry) => entry,
        None => {
            let registry = Registry::open(&path)?;
            (registry, identity().unwrap_or((0, 0)))
        }
    };
    Ok(&mut slot.insert(entry).0)
}

/// "exit code 1", "killed by signal 9".
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// Starts the training process of queued experiment `info`, claiming it in the same transaction (so no other
/// runner or command sees it queued once it runs). `None` when it was no longer queued or could not start (then
/// it is `failed` with the reason).
fn launch(
    registry: &mut Registry,
    home: &Home,
    options: &RunnerOptions,
    info: &ExperimentInfo,
) -> Result<Option<Run>> {
    let path = registry.path().to_path_buf();
    let mut spawned: Option<Child> = None;
    let result = registry.write(|tx| {
        let Some(current) = experiment::get(tx, &path, &info.name)? else {
            return Ok(());
        };
        if current.status != Status::Queued {
            return Ok(());
        }
        let dir = &current.output_dir;
        // A stale outcome must not be mistaken for this run's.
        let _ = std::fs::remove_file(ferrotune_home::RunDir::new(dir).status());
        match start_training(&options.exe, home, &current) {
            Ok(child) => {
                let id = ProcessId::of(child.id());
                spawned = Some(child);
                experiment::set_running(tx, &path, current.id, id.pid, id.start)
            }
            Err(e) => {
                let message = e.to_string();
                experiment::set_status(tx, &path, current.id, Status::Failed, Some(&message))
            }
        }
    });
    if let Err(e) = result {
        if let Some(mut child) = spawned {
            // Not recorded, so nobody could stop or follow it: end it now; it stays queued for the next round.
            let _ = process::terminate(ProcessId::of(child.id()));
            let _ = child.wait();
        }
        return Err(e);
    }
    Ok(spawned.map(|child| Run {
        child,
        tracker: Tracker::new(&info.output_dir),
    }))
}

/// `ferrotune --quiet train --config DIR/cfg.yaml`, or `--resume DIR`, with stderr appended to `DIR/stderr.log`.
fn start_training(exe: &Path, home: &Home, info: &ExperimentInfo) -> Result<Child> {
    let dir = &info.output_dir;
    let cfg = ferrotune_home::RunDir::new(dir).config();
    let (flag, target): (&str, &Path) = if info.resume {
        ("--resume", dir)
    } else {
        ("--config", &cfg)
    };
    let args: [&OsStr; 4] = [
        "--quiet".as_ref(),
        "train".as_ref(),
        flag.as_ref(),
        target.as_os_str(),
    ];
    process::spawn(
        exe,
        &args,
        home,
        &ferrotune_home::RunDir::new(dir).stderr(),
        false,
    )
}
