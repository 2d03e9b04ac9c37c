//! The SQLite registry (`registry.sqlite`): WAL journal, a busy timeout so concurrent processes wait instead of
//! failing, and versioned migrations tracked in `PRAGMA user_version` (migration *n* brings the schema to
//! version *n*; each runs in its own immediate transaction, so two processes never both apply it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::dataset::{DatasetInfo, SplitInfo};
use crate::error::{Error, Result};

/// How long a writer waits for another process's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The schema, one migration per version, in order. Never edit a released migration; append a new one.
pub const MIGRATIONS: &[&str] = &[
    // v1: datasets, experiments, metrics.
    "CREATE TABLE datasets (
        name TEXT PRIMARY KEY NOT NULL,
        path TEXT NOT NULL,
        format TEXT NOT NULL,
        files TEXT NOT NULL,          -- JSON list of imported files (split, original path, format, layout, rows)
        mapping TEXT NOT NULL,        -- JSON column mapping
        train_rows INTEGER NOT NULL,
        validation_rows INTEGER,
        conversations INTEGER NOT NULL,
        statistics TEXT NOT NULL,     -- JSON {train, validation}
        created INTEGER NOT NULL,     -- unix seconds
        updated INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE experiments (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        dataset TEXT,
        config TEXT NOT NULL,         -- the resolved experiment settings (YAML)
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'finished', 'failed', 'stopped')),
        progress REAL NOT NULL DEFAULT 0,
        message TEXT,
        metric_name TEXT,
        best_metric REAL,
        last_metric REAL,
        pid INTEGER,
        device TEXT,
        output_dir TEXT NOT NULL,
        created INTEGER NOT NULL,
        started INTEGER,
        finished INTEGER,
        updated INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX experiments_status ON experiments (status);
    CREATE TABLE metrics (
        experiment INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        time INTEGER,
        PRIMARY KEY (experiment, name, step)
    ) STRICT;",
    // v2: what the experiment runner needs: queue order, how to start the next run, the training process's
    // identity (pid plus its start time, so a reused pid is not mistaken for it) and the step counts.
    "ALTER TABLE experiments ADD COLUMN queue_position INTEGER;  -- FIFO order of queued experiments
    ALTER TABLE experiments ADD COLUMN resume INTEGER NOT NULL DEFAULT 0;  -- 1: the next run continues from checkpoint/
    ALTER TABLE experiments ADD COLUMN pid_start INTEGER;  -- start time of `pid` (clock ticks after boot, /proc/<pid>/stat)
    ALTER TABLE experiments ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE experiments ADD COLUMN step INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE experiments ADD COLUMN total_steps INTEGER;
    CREATE INDEX experiments_queue ON experiments (status, queue_position);",
];

/// An open registry.
pub struct Registry {
    conn: Connection,
    path: PathBuf,
}

impl Registry {
    /// Opens (creating and migrating when needed) the registry at `path` in WAL mode.
    pub fn open(path: &Path) -> Result<Registry> {
        Self::open_with(path, true)
    }

    /// Opens the registry at `path`; `wal` chooses the journal (a registry being rebuilt aside uses the default
    /// rollback journal so that it is one self-contained file when renamed into place).
    pub(crate) fn open_with(path: &Path, wal: bool) -> Result<Registry> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(crate::error::io(parent))?;
        }
        let conn = Connection::open(path).map_err(sql(path))?;
        let mut registry = Registry {
            conn,
            path: path.to_path_buf(),
        };
        registry.configure(wal)?;
        registry.migrate()?;
        Ok(registry)
    }

    fn configure(&mut self, wal: bool) -> Result<()> {
        let path = self.path.clone();
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(sql(&path))?;
        let mode = if wal { "WAL" } else { "DELETE" };
        // Switching the journal needs a lock; retry while another process holds one (the busy handler does not
        // cover this pragma on every path).
        let mut tries = 0;
        loop {
            match self
                .conn
                .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| {
                    r.get::<_, String>(0)
                }) {
                Ok(_) => break,
                Err(e) if tries < 300 && is_busy(&e) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(sql(&path)(e)),
            }
        }
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(sql(&path))
    }

    /// The schema version this build writes.
    pub fn schema_version() -> i64 {
        MIGRATIONS.len() as i64
    }

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let known = Self::schema_version();
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql(&path))?;
            let version: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(sql(&path))?;
            if version > known {
                return Err(Error::SchemaTooNew {
                    path,
                    found: version,
                    known,
                });
            }
            if version == known {
                return Ok(());
            }
            tx.execute_batch(MIGRATIONS[version as usize])
                .map_err(sql(&path))?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", version + 1))
                .map_err(sql(&path))?;
            tx.commit().map_err(sql(&path))?;
        }
    }

    /// The current schema version of the file.
    pub fn version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql(&self.path))
    }

    /// Names of every table, sorted.
    pub fn tables(&self) -> Result<Vec<String>> {
        self.strings("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    }

    /// The first column of every row of `query`, as strings.
    fn strings(&self, query: &str) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(query).map_err(sql(&self.path))?;
        let values = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(sql(&self.path));
        values
    }

    /// Runs `f` in an immediate (write-locking) transaction and commits when it succeeds.
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(&path))?;
        let value = f(&tx)?;
        tx.commit().map_err(sql(&path))?;
        Ok(value)
    }

    /// The connection, for reads by the other modules of this crate.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The registry file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every dataset, by name.
    pub fn datasets(&self) -> Result<Vec<DatasetInfo>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {DATASET_COLUMNS} FROM datasets ORDER BY name"
            ))
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([], read_dataset)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(sql(&self.path))?;
        rows.into_iter().collect()
    }

    /// The dataset `name`, if registered.
    pub fn dataset(&self, name: &str) -> Result<Option<DatasetInfo>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE name = ?1"),
                [name],
                read_dataset,
            )
            .optional()
            .map_err(sql(&self.path))?;
        row.transpose()
    }

    /// Names of every registered dataset.
    pub fn dataset_names(&self) -> Result<Vec<String>> {
        self.strings("SELECT name FROM datasets ORDER BY name")
    }
}

const DATASET_COLUMNS: &str =
    "name, format, files, mapping, train_rows, validation_rows, statistics, created, updated";

type Row = rusqlite::Result<Result<DatasetInfo>>;

fn read_dataset(r: &rusqlite::Row<'_>) -> Row {
    let name: String = r.get(0)?;
    let format: String = r.get(1)?;
    let files: String = r.get(2)?;
    let mapping: String = r.get(3)?;
    let train_rows: i64 = r.get(4)?;
    let validation_rows: Option<i64> = r.get(5)?;
    let statistics: String = r.get(6)?;
    let created: i64 = r.get(7)?;
    let updated: i64 = r.get(8)?;
    let bad = |e: serde_json::Error| Error::BadMetadata {
        path: PathBuf::from(format!("registry row `{name}`")),
        message: e.to_string(),
    };
    let parse = || -> Result<DatasetInfo> {
        let stats: StatsColumn = serde_json::from_str(&statistics).map_err(bad)?;
        Ok(DatasetInfo {
            name: name.clone(),
            version: crate::dataset::METADATA_VERSION,
            format,
            files: serde_json::from_str(&files).map_err(bad)?,
            mapping: serde_json::from_str(&mapping).map_err(bad)?,
            train: SplitInfo {
                file: crate::dataset::TRAIN_FILE.into(),
                rows: train_rows as u64,
                statistics: stats.train,
            },
            validation: match (validation_rows, stats.validation) {
                (Some(rows), Some(statistics)) => Some(SplitInfo {
                    file: crate::dataset::VALIDATION_FILE.into(),
                    rows: rows as u64,
                    statistics,
                }),
                _ => None,
            },
            created: created as u64,
            updated: updated as u64,
        })
    };
    Ok(parse())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StatsColumn {
    train: ferrotune_data::import::Statistics,
    validation: Option<ferrotune_data::import::Statistics>,
}

/// Inserts or replaces the row of `info` (whose folder is `path`).
pub(crate) fn put_dataset(
    tx: &rusqlite::Transaction<'_>,
    info: &DatasetInfo,
    path: &Path,
) -> Result<()> {
    let stats = StatsColumn {
        train: info.train.statistics.clone(),
        validation: info.validation.as_ref().map(|v| v.statistics.clone()),
    };
    tx.execute(
        "INSERT OR REPLACE INTO datasets
         (name, path, format, files, mapping, train_rows, validation_rows, conversations, statistics, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            info.name,
            path.to_string_lossy(),
            info.format,
            to_json(&info.files),
            to_json(&info.mapping),
            info.train.rows as i64,
            info.validation.as_ref().map(|v| v.rows as i64),
            info.train.statistics.conversations as i64,
            to_json(&stats),
            info.created as i64,
            info.updated as i64,
        ],
    )
    .map_err(|source| Error::Sqlite {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// Whether `name` is registered (inside a transaction).
pub(crate) fn has_dataset(tx: &rusqlite::Transaction<'_>, name: &str, path: &Path) -> Result<bool> {
    tx.query_row("SELECT 1 FROM datasets WHERE name = ?1", [name], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
        .map_err(sql(path))
}

/// Removes the row of `name`; whether there was one.
pub(crate) fn remove_dataset(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    path: &Path,
) -> Result<bool> {
    tx.execute("DELETE FROM datasets WHERE name = ?1", [name])
        .map(|n| n > 0)
        .map_err(sql(path))
}

/// A plain data value as JSON text (serialising these types cannot fail).
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

pub(crate) fn sql(path: &Path) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |source| Error::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_registry_has_the_latest_schema_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite");
        let reg = Registry::open(&path).unwrap();
        assert_eq!(reg.version().unwrap(), Registry::schema_version());
        assert_eq!(
            reg.tables().unwrap(),
            ["datasets", "experiments", "metrics"]
        );
        let mode: String = reg
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(reg);
        assert_eq!(
            Registry::open(&path).unwrap().version().unwrap(),
            Registry::schema_version()
        );
    }

    #[test]
    fn a_newer_schema_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite");
        drop(Registry::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let err = Registry::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("schema version 99") && err.contains("--rebuild-index"),
            "{err}"
        );
    }

    #[test]
    fn a_version_1_registry_is_migrated_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO experiments (name, config, status, output_dir, created, updated)
             VALUES ('old', '', 'finished', '/h/experiments/old', 5, 5);",
        )
        .unwrap();
        drop(conn);
        let reg = Registry::open(&path).unwrap();
        assert_eq!(reg.version().unwrap(), Registry::schema_version());
        let old = reg.experiment("old").unwrap().unwrap();
        assert_eq!(
            (old.status, old.step, old.resume, old.device.as_str()),
            (crate::Status::Finished, 0, false, "cpu")
        );
    }

    #[test]
    fn experiment_statuses_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("r.sqlite")).unwrap();
        let insert = |status: &str| {
            reg.conn.execute(
                "INSERT INTO experiments (name, config, status, output_dir, created, updated)
                 VALUES (?1, '', ?2, 'o', 0, 0)",
                params![status, status],
            )
        };
        assert!(insert("queued").is_ok());
        assert!(insert("sleeping").is_err());
        reg.conn
            .execute(
                "INSERT INTO metrics (experiment, step, name, value) VALUES (1, 1, 'loss', 0.5)",
                [],
            )
            .unwrap();
        // Metrics belong to an experiment.
        assert!(reg
            .conn
            .execute(
                "INSERT INTO metrics (experiment, step, name, value) VALUES (7, 1, 'loss', 0.5)",
                []
            )
            .is_err());
    }
}
