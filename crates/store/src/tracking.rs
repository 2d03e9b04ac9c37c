//! What a run's files say, brought into the registry: progress and metrics from `metrics.jsonl` (read
//! incrementally, whole lines only), the outcome from `status.json`, and crash detection: an experiment marked
//! running whose process is gone becomes `failed` ("process ended unexpectedly", with the last log lines) unless
//! its `status.json` says how it ended.

use std::path::Path;

use ferrotune_home::{Event, LineFollower, RunDir};
use rusqlite::{params, Transaction};

use crate::error::{io, Result};
use crate::experiment::{self, ExperimentInfo, Status};
use crate::process::ProcessId;
use crate::registry::{sql, Registry};

/// How many log lines a crash message carries.
pub const CRASH_LOG_LINES: usize = 5;

/// Whether a larger value of the metric `name` is better (the config's [`ferrotune_config::Metric`]; an unknown
/// name is a loss-like value, where smaller is better).
pub fn higher_is_better(name: &str) -> bool {
    ferrotune_config::Metric::from_name(name).is_some_and(|m| m.higher_is_better())
}

/// One point of a metric series.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub step: u64,
    pub name: String,
    pub value: f64,
}

/// A run's progress as read so far from `metrics.jsonl`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub step: u64,
    pub total_steps: Option<u64>,
    pub metric_name: Option<String>,
    pub best_metric: Option<f64>,
    pub last_metric: Option<f64>,
    /// Points read since the last [`Tracker::sync`] wrote them.
    pub pending: Vec<Point>,
}

impl Progress {
    /// Takes one `metrics.jsonl` line into account (lines that are not step or evaluation events are skipped).
    pub fn read_line(&mut self, line: &str) {
        let Some(event) = Event::from_line(line) else {
            return;
        };
        let mut point = |step: u64, name: &str, value: f64| {
            if value.is_finite() {
                self.pending.push(Point {
                    step,
                    name: name.to_string(),
                    value,
                });
            }
        };
        match event {
            Event::Step {
                step,
                total_steps,
                loss,
                lr,
                grad_norm,
                ..
            } => {
                point(step, "train_loss", loss);
                point(step, "lr", lr);
                point(step, "grad_norm", grad_norm);
                self.step = step;
                self.total_steps = Some(total_steps);
            }
            Event::Evaluation {
                step,
                validation_loss,
                perplexity,
                metric_name,
                metric,
                ..
            } => {
                point(step, "validation_loss", validation_loss);
                if !metric_name.eq_ignore_ascii_case("perplexity") {
                    point(step, "perplexity", perplexity);
                }
                point(step, &metric_name, metric);
                if metric.is_finite() {
                    self.last_metric = Some(metric);
                    // The evaluation before the first step is a baseline, not a result (as in training).
                    if step > 0 {
                        let better = |best: f64| {
                            if higher_is_better(&metric_name) {
                                metric > best
                            } else {
                                metric < best
                            }
                        };
                        if self.best_metric.is_none_or(better) {
                            self.best_metric = Some(metric);
                        }
                    }
                }
                self.metric_name = Some(metric_name);
            }
            Event::Checkpoint { .. } | Event::PeakMemory { .. } | Event::Log { .. } => {}
        }
    }

    /// Fraction of the steps done.
    pub fn fraction(&self) -> f64 {
        match self.total_steps {
            Some(total) if total > 0 => (self.step as f64 / total as f64).min(1.0),
            _ => 0.0,
        }
    }
}

/// Follows one run's `metrics.jsonl` from the start, a few new lines at a time.
#[derive(Debug)]
pub struct Tracker {
    metrics: LineFollower,
    progress: Progress,
    /// Whether [`Tracker::sync`] has written the progress once.
    synced: bool,
}

impl Tracker {
    /// A tracker for the run in `dir`, at the start of its file.
    pub fn new(dir: &Path) -> Tracker {
        Tracker {
            metrics: LineFollower::new(RunDir::new(dir).metrics()),
            progress: Progress::default(),
            synced: false,
        }
    }

    /// The progress so far.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Reads the complete lines added since the last call; whether there were any. A line still being written
    /// waits for the next call; a new, shorter file (the run was restarted) is read from its start.
    pub fn read_new(&mut self) -> Result<bool> {
        let new = self.metrics.read().map_err(io(self.metrics.path()))?;
        if new.restarted {
            self.progress = Progress::default();
        }
        for line in &new.lines {
            self.progress.read_line(line);
        }
        Ok(!new.lines.is_empty())
    }

    /// Reads new lines and, when there were any (or on the first call), writes the progress and new metric
    /// points of experiment `id`.
    pub fn sync(&mut self, tx: &Transaction<'_>, registry: &Path, id: i64) -> Result<()> {
        let news = self.read_new()?;
        if news || !self.synced {
            self.synced = true;
            write_progress(tx, registry, id, &mut self.progress)?;
        }
        Ok(())
    }
}

/// Writes `progress` (and its pending points, which it clears) into the row and metrics of experiment `id`.
pub(crate) fn write_progress(
    tx: &Transaction<'_>,
    registry: &Path,
    id: i64,
    progress: &mut Progress,
) -> Result<()> {
    let now = crate::dataset::now() as i64;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO metrics (experiment, step, name, value, time) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql(registry))?;
        for p in progress.pending.drain(..) {
            insert
                .execute(params![id, p.step as i64, p.name, p.value, now])
                .map_err(sql(registry))?;
        }
    }
    tx.execute(
        "UPDATE experiments SET step = ?2, total_steps = ?3, progress = ?4, metric_name = ?5,
             best_metric = ?6, last_metric = ?7, updated = ?8
         WHERE id = ?1",
        params![
            id,
            progress.step as i64,
            progress.total_steps.map(|v| v as i64),
            progress.fraction(),
            progress.metric_name,
            progress.best_metric,
            progress.last_metric,
            now,
        ],
    )
    .map(drop)
    .map_err(sql(registry))
}

/// `status.json` of a run: its status and message, when the file is readable.
pub fn read_status_file(dir: &Path) -> Option<(Status, String)> {
    RunDir::new(dir)
        .read_status()
        .map(|file| (file.status, file.message))
}

/// The last `n` non-empty lines of `path` (nothing when it cannot be read).
pub fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// How a run ended, from its files: what `status.json` says if the run wrote its outcome, else `failed` with
/// "process ended unexpectedly", `how` (e.g. "killed by signal 9") and the last log lines. A run asked to stop
/// that ended before it could write its outcome counts as stopped.
pub fn outcome(info: &ExperimentInfo, how: Option<&str>) -> (Status, String) {
    let dir = &info.output_dir;
    match read_status_file(dir) {
        Some((status, message)) if status.is_done() => return (status, message),
        _ => {}
    }
    if info.stop_requested {
        return (
            Status::Stopped,
            "stopped before the run wrote a checkpoint".into(),
        );
    }
    let mut message = String::from("process ended unexpectedly");
    if let Some(how) = how {
        message.push_str(&format!(" ({how})"));
    }
    let run = RunDir::new(dir);
    let mut lines = last_lines(&run.log(), CRASH_LOG_LINES);
    lines.extend(last_lines(&run.stderr(), CRASH_LOG_LINES));
    if !lines.is_empty() {
        message.push_str("; last log lines:\n");
        message.push_str(&lines.join("\n"));
    }
    (Status::Failed, message)
}

/// Records the end of experiment `info`'s run: reads its metrics to the end, then the outcome. Does nothing when
/// the row no longer shows this run (another process recorded it first).
pub(crate) fn finish(
    tx: &Transaction<'_>,
    registry: &Path,
    info: &ExperimentInfo,
    tracker: Option<&mut Tracker>,
    how: Option<&str>,
) -> Result<()> {
    let Some(current) = experiment::get(tx, registry, &info.name)? else {
        return Ok(());
    };
    if current.status != Status::Running || current.pid != info.pid {
        return Ok(());
    }
    let mut fresh;
    let tracker = match tracker {
        Some(t) => t,
        None => {
            fresh = Tracker::new(&current.output_dir);
            &mut fresh
        }
    };
    tracker.sync(tx, registry, current.id)?;
    let (status, message) = outcome(&current, how);
    let message = (!message.is_empty()).then_some(message);
    experiment::set_status(tx, registry, current.id, status, message.as_deref())
}

/// Crash detection for readers: every experiment marked running whose process is gone is finished from its
/// files. Returns the names it updated.
pub fn reconcile(registry: &mut Registry) -> Result<Vec<String>> {
    let dead: Vec<ExperimentInfo> = registry
        .experiments_with(Status::Running)?
        .into_iter()
        .filter(|e| !is_alive(e))
        .collect();
    if dead.is_empty() {
        return Ok(Vec::new());
    }
    let path = registry.path().to_path_buf();
    registry.write(|tx| {
        for info in &dead {
            finish(tx, &path, info, None, None)?;
        }
        Ok(())
    })?;
    Ok(dead.into_iter().map(|e| e.name).collect())
}

/// Whether the process recorded for a running experiment still runs.
pub fn is_alive(info: &ExperimentInfo) -> bool {
    info.pid.is_some_and(|pid| {
        ProcessId {
            pid,
            start: info.pid_start,
        }
        .is_alive()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_evaluations_make_progress_and_best_metric() {
        let mut p = Progress::default();
        for line in [
            r#"{"event":"evaluation","step":0,"epoch":0,"validation_loss":3.0,"perplexity":20.0,"metric_name":"Perplexity","metric":20.0}"#,
            r#"{"event":"step","step":1,"total_steps":4,"epoch":0.25,"samples_seen":4,"loss":2.5,"lr":0.01,"grad_norm":1.0,"tokens_per_second":9.0}"#,
            r#"{"event":"evaluation","step":1,"epoch":0.25,"validation_loss":2.0,"perplexity":7.4,"metric_name":"Perplexity","metric":7.4}"#,
            r#"{"event":"step","step":2,"total_steps":4,"epoch":0.5,"samples_seen":8,"loss":2.0,"lr":0.01,"grad_norm":1.0,"tokens_per_second":9.0}"#,
            r#"{"event":"evaluation","step":2,"epoch":0.5,"validation_loss":2.2,"perplexity":9.0,"metric_name":"Perplexity","metric":9.0}"#,
            r#"{"event":"log","message":"hello"}"#,
            "not json",
        ] {
            p.read_line(line);
        }
        assert_eq!((p.step, p.total_steps), (2, Some(4)));
        assert_eq!(p.fraction(), 0.5);
        assert_eq!(p.metric_name.as_deref(), Some("Perplexity"));
        assert_eq!(
            (p.best_metric, p.last_metric),
            (Some(7.4), Some(9.0)),
            "the baseline at step 0 is not a best"
        );
        let losses: Vec<f64> = p
            .pending
            .iter()
            .filter(|x| x.name == "train_loss")
            .map(|x| x.value)
            .collect();
        assert_eq!(losses, [2.5, 2.0]);
    }

    #[test]
    fn bleu_is_better_when_higher() {
        let mut p = Progress::default();
        for (step, v) in [(1, 0.2), (2, 0.5), (3, 0.3)] {
            p.read_line(&format!(
                r#"{{"event":"evaluation","step":{step},"validation_loss":1.0,"perplexity":2.0,"metric_name":"BLEU","metric":{v}}}"#
            ));
        }
        assert_eq!((p.best_metric, p.last_metric), (Some(0.5), Some(0.3)));
    }

    #[test]
    fn the_tracker_reads_whole_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = RunDir::new(dir.path()).metrics();
        let step = |s: u64| {
            format!(
                r#"{{"event":"step","step":{s},"total_steps":4,"loss":1.0,"lr":0.1,"grad_norm":1.0}}"#
            )
        };
        std::fs::write(&file, format!("{}\n{}", step(1), &step(2)[..10])).unwrap();
        let mut t = Tracker::new(dir.path());
        assert!(t.read_new().unwrap());
        assert_eq!(t.progress().step, 1);
        assert!(!t.read_new().unwrap(), "half a line is no news");
        std::fs::write(&file, format!("{}\n{}\n", step(1), step(2))).unwrap();
        assert!(t.read_new().unwrap());
        assert_eq!(t.progress().step, 2);
        // A restarted run's new, shorter file is read from its start.
        std::fs::write(&file, format!("{}\n", step(1))).unwrap();
        assert!(t.read_new().unwrap());
        assert_eq!(t.progress().step, 1);
    }

    #[test]
    fn a_crash_is_failed_with_the_last_log_lines_unless_status_json_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let info = ExperimentInfo {
            output_dir: dir.path().to_path_buf(),
            ..crate::experiment::blank("x")
        };
        let log: String = (1..=8).map(|i| format!("line {i}\n")).collect();
        std::fs::write(RunDir::new(dir.path()).log(), log).unwrap();
        std::fs::write(
            RunDir::new(dir.path()).status(),
            r#"{"status":"running","message":""}"#,
        )
        .unwrap();
        let (status, message) = outcome(&info, Some("killed by signal 9"));
        assert_eq!(status, Status::Failed);
        assert!(message.starts_with("process ended unexpectedly (killed by signal 9)"));
        assert!(
            message.contains("line 8")
                && message.contains("line 4")
                && !message.contains("line 3\n")
        );
        std::fs::write(
            RunDir::new(dir.path()).status(),
            r#"{"status":"finished","message":""}"#,
        )
        .unwrap();
        assert_eq!(outcome(&info, None).0, Status::Finished);
    }
}
