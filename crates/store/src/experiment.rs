//! An experiment's registry row ([`ExperimentInfo`]) and the SQL that reads and writes it. The output folder
//! (`experiments/<name>/`: `cfg.yaml`, `status.json`, `logs.log`, `metrics.jsonl`, `checkpoint/`, `adapter/`) is
//! the source of truth; the row indexes it and adds what only the queue knows (queue position, pid).

use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::registry::{sql, Registry};

/// Where an experiment is in its life (declared with the run folder's formats in `ferrotune-home`).
pub use ferrotune_home::RunStatus as Status;

/// One experiment as the registry lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentInfo {
    pub id: i64,
    pub name: String,
    /// The registered dataset it trains on (`--dataset`), if any.
    pub dataset: Option<String>,
    pub status: Status,
    /// Fraction of the optimizer steps done, 0 to 1.
    pub progress: f64,
    pub step: u64,
    pub total_steps: Option<u64>,
    /// Why it failed or stopped (with the last log lines when the process ended unexpectedly).
    pub message: Option<String>,
    /// The validation metric (`Perplexity`, `BLEU`) and its best and last values.
    pub metric_name: Option<String>,
    pub best_metric: Option<f64>,
    pub last_metric: Option<f64>,
    /// The training process while running.
    pub pid: Option<u32>,
    pub device: String,
    pub output_dir: PathBuf,
    /// Whether the next run continues from the checkpoint.
    pub resume: bool,
    /// Unix seconds.
    pub created: u64,
    pub started: Option<u64>,
    pub finished: Option<u64>,
    pub updated: u64,
    /// The resolved settings (YAML).
    #[serde(skip)]
    pub config: String,
    /// The start time of `pid` (see [`crate::process::ProcessId`]).
    #[serde(skip)]
    pub pid_start: Option<u64>,
    /// `experiment stop` asked the process to stop.
    #[serde(skip)]
    pub stop_requested: bool,
}

const COLUMNS: &str = "id, name, dataset, status, progress, step, total_steps, message, metric_name, best_metric, \
     last_metric, pid, device, output_dir, resume, created, started, finished, updated, config, pid_start, \
     stop_requested";

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExperimentInfo> {
    let status: String = r.get(3)?;
    let opt_u64 = |i: usize| -> rusqlite::Result<Option<u64>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64))
    };
    Ok(ExperimentInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        dataset: r.get(2)?,
        // The table's CHECK constraint admits only the five names.
        status: Status::parse(&status).unwrap_or(Status::Failed),
        progress: r.get(4)?,
        step: r.get::<_, i64>(5)?.max(0) as u64,
        total_steps: opt_u64(6)?,
        message: r.get(7)?,
        metric_name: r.get(8)?,
        best_metric: r.get(9)?,
        last_metric: r.get(10)?,
        pid: r.get::<_, Option<i64>>(11)?.map(|p| p as u32),
        device: r
            .get::<_, Option<String>>(12)?
            .unwrap_or_else(|| "cpu".into()),
        output_dir: PathBuf::from(r.get::<_, String>(13)?),
        resume: r.get::<_, i64>(14)? != 0,
        created: r.get::<_, i64>(15)?.max(0) as u64,
        started: opt_u64(16)?,
        finished: opt_u64(17)?,
        updated: r.get::<_, i64>(18)?.max(0) as u64,
        config: r.get(19)?,
        pid_start: opt_u64(20)?,
        stop_requested: r.get::<_, i64>(21)? != 0,
    })
}

impl Registry {
    /// Every experiment, oldest first.
    pub fn experiments(&self) -> Result<Vec<ExperimentInfo>> {
        query(self.conn(), self.path(), "ORDER BY created, id", params![])
    }

    /// The experiment `name`, if registered.
    pub fn experiment(&self, name: &str) -> Result<Option<ExperimentInfo>> {
        Ok(query(self.conn(), self.path(), "WHERE name = ?1", params![name])?.pop())
    }

    /// Experiments with `status`, in queue order for `queued`.
    pub fn experiments_with(&self, status: Status) -> Result<Vec<ExperimentInfo>> {
        query(
            self.conn(),
            self.path(),
            "WHERE status = ?1 ORDER BY queue_position, id",
            params![status.name()],
        )
    }
}

fn query(
    conn: &rusqlite::Connection,
    path: &Path,
    clause: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<ExperimentInfo>> {
    let mut stmt = conn
        .prepare(&format!("SELECT {COLUMNS} FROM experiments {clause}"))
        .map_err(sql(path))?;
    let rows = stmt
        .query_map(args, read)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(sql(path));
    rows
}

/// The experiment `name` inside a transaction.
pub(crate) fn get(tx: &Transaction<'_>, path: &Path, name: &str) -> Result<Option<ExperimentInfo>> {
    tx.query_row(
        &format!("SELECT {COLUMNS} FROM experiments WHERE name = ?1"),
        [name],
        read,
    )
    .optional()
    .map_err(sql(path))
}

/// Inserts `info` (its `id` is ignored) and returns the new id; a queued one goes to the end of the queue.
pub(crate) fn insert(tx: &Transaction<'_>, path: &Path, info: &ExperimentInfo) -> Result<i64> {
    tx.execute(
        "INSERT INTO experiments (name, dataset, config, status, progress, message, metric_name, best_metric,
             last_metric, pid, device, output_dir, created, started, finished, updated, queue_position, resume,
             pid_start, stop_requested, step, total_steps)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
             CASE WHEN ?4 = 'queued' THEN (SELECT COALESCE(MAX(queue_position), 0) + 1 FROM experiments) END,
             ?17, ?18, ?19, ?20, ?21)",
        params![
            info.name,
            info.dataset,
            info.config,
            info.status.name(),
            info.progress,
            info.message,
            info.metric_name,
            info.best_metric,
            info.last_metric,
            info.pid.map(i64::from),
            info.device,
            info.output_dir.to_string_lossy(),
            info.created as i64,
            info.started.map(|v| v as i64),
            info.finished.map(|v| v as i64),
            info.updated as i64,
            i64::from(info.resume),
            info.pid_start.map(|v| v as i64),
            i64::from(info.stop_requested),
            info.step as i64,
            info.total_steps.map(|v| v as i64),
        ],
    )
    .map_err(sql(path))?;
    Ok(tx.last_insert_rowid())
}

/// Puts experiment `id` back in the queue (at its end): `resume` chooses `train --resume` or a fresh run.
pub(crate) fn requeue(tx: &Transaction<'_>, path: &Path, id: i64, resume: bool) -> Result<()> {
    tx.execute(
        "UPDATE experiments SET status = 'queued', resume = ?2, message = NULL, pid = NULL, pid_start = NULL,
             stop_requested = 0, finished = NULL, updated = ?3,
             queue_position = (SELECT COALESCE(MAX(queue_position), 0) + 1 FROM experiments)
         WHERE id = ?1",
        params![id, i64::from(resume), crate::dataset::now() as i64],
    )
    .map(drop)
    .map_err(sql(path))
}

/// Sets the status (and message) of experiment `id`; a done status records the end time and clears the pid.
pub(crate) fn set_status(
    tx: &Transaction<'_>,
    path: &Path,
    id: i64,
    status: Status,
    message: Option<&str>,
) -> Result<()> {
    let now = crate::dataset::now() as i64;
    tx.execute(
        "UPDATE experiments SET status = ?2, message = ?3, updated = ?4,
             finished = CASE WHEN ?5 THEN ?4 ELSE finished END,
             pid = CASE WHEN ?5 THEN NULL ELSE pid END,
             pid_start = CASE WHEN ?5 THEN NULL ELSE pid_start END
         WHERE id = ?1",
        params![id, status.name(), message, now, status.is_done()],
    )
    .map(drop)
    .map_err(sql(path))
}

/// Records that experiment `id` runs as process `pid` (started at `pid_start`).
pub(crate) fn set_running(
    tx: &Transaction<'_>,
    path: &Path,
    id: i64,
    pid: u32,
    pid_start: Option<u64>,
) -> Result<()> {
    let now = crate::dataset::now() as i64;
    tx.execute(
        "UPDATE experiments SET status = 'running', pid = ?2, pid_start = ?3, started = ?4, updated = ?4,
             message = NULL, finished = NULL, stop_requested = 0
         WHERE id = ?1",
        params![id, i64::from(pid), pid_start.map(|v| v as i64), now],
    )
    .map(drop)
    .map_err(sql(path))
}

/// Removes experiment `id` and its metrics.
pub(crate) fn remove(tx: &Transaction<'_>, path: &Path, id: i64) -> Result<()> {
    tx.execute("DELETE FROM metrics WHERE experiment = ?1", [id])
        .and_then(|_| tx.execute("DELETE FROM experiments WHERE id = ?1", [id]))
        .map(drop)
        .map_err(sql(path))
}

/// The not-found error for `name`, suggesting the closest registered name.
pub(crate) fn not_found(registry: &Registry, name: &str) -> Error {
    let names: Vec<String> = registry
        .experiments()
        .map(|all| all.into_iter().map(|e| e.name).collect())
        .unwrap_or_default();
    let suggestion =
        ferrotune_config::did_you_mean(name, names.iter().map(String::as_str)).map(str::to_string);
    Error::ExperimentNotFound {
        name: name.to_string(),
        suggestion,
    }
}

/// Checks an experiment name: it becomes a folder name and a command-line argument.
pub fn check_name(name: &str) -> Result<()> {
    crate::dataset::check_name_of("experiment", name).map_err(|e| match e {
        Error::InvalidName { name, reason, .. } => Error::InvalidExperimentName { name, reason },
        other => other,
    })
}

impl Registry {
    /// The value of metric `name` at the highest step of experiment `id`.
    pub fn last_value(&self, id: i64, name: &str) -> Result<Option<f64>> {
        self.conn()
            .query_row(
                "SELECT value FROM metrics WHERE experiment = ?1 AND name = ?2 ORDER BY step DESC LIMIT 1",
                params![id, name],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(self.path()))
    }

    /// The series of metric `name` of experiment `id`: (step, value), by step.
    pub fn metric_series(&self, id: i64, name: &str) -> Result<Vec<(u64, f64)>> {
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT step, value FROM metrics WHERE experiment = ?1 AND name = ?2 ORDER BY step",
            )
            .map_err(sql(self.path()))?;
        let rows = stmt
            .query_map(params![id, name], |r| {
                Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(sql(self.path()));
        rows
    }
}

/// A queued row for `name` with nothing recorded yet.
pub(crate) fn blank(name: &str) -> ExperimentInfo {
    ExperimentInfo {
        id: 0,
        name: name.into(),
        dataset: None,
        status: Status::Queued,
        progress: 0.0,
        step: 0,
        total_steps: None,
        message: None,
        metric_name: None,
        best_metric: None,
        last_metric: None,
        pid: None,
        device: "cpu".into(),
        output_dir: PathBuf::new(),
        resume: false,
        created: 0,
        started: None,
        finished: None,
        updated: 0,
        config: String::new(),
        pid_start: None,
        stop_requested: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_the_queue_is_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::open(&dir.path().join("r.sqlite")).unwrap();
        let path = reg.path().to_path_buf();
        let (a, b) = reg
            .write(|tx| {
                let a = insert(tx, &path, &blank("a"))?;
                let b = insert(tx, &path, &blank("b"))?;
                Ok((a, b))
            })
            .unwrap();
        let queue: Vec<String> = reg
            .experiments_with(Status::Queued)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(queue, ["a", "b"]);
        // A requeued experiment goes to the end.
        reg.write(|tx| requeue(tx, &path, a, true)).unwrap();
        let queue = reg.experiments_with(Status::Queued).unwrap();
        assert_eq!((queue[0].name.as_str(), queue[1].resume), ("b", true));
        reg.write(|tx| set_running(tx, &path, b, 42, Some(7)))
            .unwrap();
        let got = reg.experiment("b").unwrap().unwrap();
        assert_eq!(
            (got.status, got.pid, got.pid_start),
            (Status::Running, Some(42), Some(7))
        );
        reg.write(|tx| set_status(tx, &path, b, Status::Failed, Some("boom")))
            .unwrap();
        let got = reg.experiment("b").unwrap().unwrap();
        assert_eq!((got.status, got.pid), (Status::Failed, None));
        assert!(got.finished.is_some());
        assert!(matches!(
            not_found(&reg, "bb"),
            Error::ExperimentNotFound { suggestion: Some(s), .. } if s == "b"
        ));
        reg.write(|tx| remove(tx, &path, b)).unwrap();
        assert!(reg.experiment("b").unwrap().is_none());
    }

    #[test]
    fn names_are_checked_as_experiment_names() {
        let err = check_name("a b").unwrap_err().to_string();
        assert!(err.contains("invalid experiment name"), "{err}");
    }
}
