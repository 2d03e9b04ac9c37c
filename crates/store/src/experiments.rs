//! Experiment operations: plan (resolve, point at a dataset, expand a grid, validate) and queue, then list, show,
//! stop, resume, restart, delete, rename and compare. Readers reconcile first (see [`crate::tracking::reconcile`]),
//! so no experiment shows "running" after its process is gone. The runner ([`crate::runner`]) does the running.

use std::path::{Path, PathBuf};

use ferrotune_config::{
    apply_overrides, check_environment, load_with_overrides, settings, validate, Experiment, Issue,
    Kind, Report, ValidationStrategy, Value,
};
use ferrotune_home::RunDir;
use rusqlite::params;

use crate::dataset::{now, Split};
use crate::error::{io, Error, Result};
use crate::experiment::{self, blank, check_name, ExperimentInfo, Status};
use crate::files;
use crate::process::{self, ProcessId};
use crate::registry::sql;
use crate::tracking::reconcile;
use crate::Store;

/// Where an experiment's settings come from.
#[derive(Debug, Clone)]
pub enum ExperimentSource {
    /// An experiment file (YAML); grid-enabled settings may hold lists (with `grid_search: true`).
    File(PathBuf),
    /// Settings already read (the studio's form).
    Settings(Box<Experiment>),
}

impl Default for ExperimentSource {
    fn default() -> Self {
        ExperimentSource::Settings(Box::default())
    }
}

impl From<PathBuf> for ExperimentSource {
    fn from(path: PathBuf) -> Self {
        ExperimentSource::File(path)
    }
}

impl From<Experiment> for ExperimentSource {
    fn from(cfg: Experiment) -> Self {
        ExperimentSource::Settings(Box::new(cfg))
    }
}

/// What `experiment start` was given.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The settings: a file or already read.
    pub config: ExperimentSource,
    /// `--section.field value` overrides, applied after the file.
    pub overrides: Vec<(String, String)>,
    /// Train (and validate, when it has a validation table) on this registered dataset.
    pub dataset: Option<String>,
    /// The experiment's name (the base name of a grid); else the file's `experiment_name`, else a drawn name.
    pub name: Option<String>,
}

/// One experiment ready to be queued.
#[derive(Debug, Clone)]
pub struct Planned {
    pub name: String,
    /// The resolved settings: name, output folder and absolute paths filled in.
    pub config: Experiment,
}

/// A validated plan: the experiments (several for a grid) and the warnings about them.
#[derive(Debug, Clone)]
pub struct Plan {
    pub experiments: Vec<Planned>,
    pub dataset: Option<String>,
    pub warnings: Vec<String>,
}

/// A plan with every problem found, per setting (see [`Store::review_experiments`]).
#[derive(Debug, Clone)]
pub struct Review {
    pub plan: Plan,
    /// Problems that block queueing.
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

/// What `stop` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM was sent to the training process, which writes a checkpoint and exits as `stopped`.
    Signalled { pid: u32 },
    /// It was still queued and is now `stopped` without having run.
    Unqueued,
    /// Its process had already ended; the registry now says how.
    AlreadyEnded,
}

/// `compare`: each experiment's summary and the settings in which they differ.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub experiments: Vec<ExperimentInfo>,
    /// The last training and validation loss of each, from the metrics.
    pub last_train_loss: Vec<Option<f64>>,
    pub last_validation_loss: Vec<Option<f64>>,
    /// Setting key → its value in each experiment (YAML), only where they differ (names and folders aside).
    pub differences: Vec<(String, Vec<String>)>,
    /// Every setting: key, its value in each experiment (YAML), whether they differ.
    pub settings: Vec<(String, Vec<String>, bool)>,
}

/// The compute device an experiment occupies; the runner runs one experiment per device at a time.
pub fn device_of(cfg: &Experiment) -> String {
    match cfg.environment.device.trim() {
        "" | "cpu" => "cpu".into(),
        "cuda" => "cuda:0".into(),
        other => other.to_string(),
    }
}

/// Relative paths made absolute against the current folder, so the run (started elsewhere, later) finds them.
fn absolute_paths(cfg: &mut Experiment) -> Result<()> {
    let cwd = std::env::current_dir().map_err(io(Path::new(".")))?;
    for s in settings().iter().filter(|s| s.kind == Kind::Path) {
        if let Some(Value::String(v)) = cfg.get(s.key) {
            let path = Path::new(&v);
            if !v.trim().is_empty() && !v.starts_with('~') && path.is_relative() {
                let abs = cwd.join(path).display().to_string();
                // A path setting takes any string.
                let _ = cfg.set(s.key, &Value::from(abs));
            }
        }
    }
    Ok(())
}

impl Store {
    /// Resolves the experiment file, points it at `--dataset`, expands a grid and validates every experiment
    /// as `train` does (settings, then the files they name, then `extra_checks`, e.g. what this release cannot
    /// train). Registers nothing. Any error is [`Error::InvalidSettings`]; [`Store::review_experiments`] keeps
    /// them per setting instead.
    pub fn plan_experiments(
        &self,
        options: &StartOptions,
        extra_checks: &dyn Fn(&Experiment) -> Vec<Issue>,
    ) -> Result<Plan> {
        let review = self.review_experiments(options, extra_checks)?;
        if !review.errors.is_empty() {
            return Err(Error::InvalidSettings {
                problems: review.errors.iter().map(|i| i.to_string()).collect(),
            });
        }
        Ok(review.plan)
    }

    /// The settings a registered dataset (`--dataset`) sets: its canonical tables and their columns. A form hides
    /// them while a registered dataset is picked.
    pub const SET_BY_REGISTERED_DATASET: [&'static str; 10] = [
        "dataset.train_dataframe",
        "dataset.validation_dataframe",
        "dataset.prompt_column",
        "dataset.answer_column",
        "dataset.rejected_answer_column",
        "dataset.rejected_prompt_column",
        "dataset.system_column",
        "dataset.parent_id_column",
        "dataset.id_column",
        "dataset.validation_strategy",
    ];

    /// Like [`Store::plan_experiments`], but returns the plan together with every problem found, each with the
    /// key of its setting (`""` for the whole experiment), so a form can show them beside their fields.
    pub fn review_experiments(
        &self,
        options: &StartOptions,
        extra_checks: &dyn Fn(&Experiment) -> Vec<Issue>,
    ) -> Result<Review> {
        let mut cfg = match &options.config {
            ExperimentSource::File(path) => load_with_overrides(Some(path), &options.overrides)?,
            ExperimentSource::Settings(cfg) => {
                let mut cfg = (**cfg).clone();
                apply_overrides(&mut cfg, &options.overrides)?;
                cfg
            }
        };
        if let Some(name) = &options.dataset {
            let train = self.table_path(name, Split::Train)?;
            let validation = self.table_path(name, Split::Validation)?;
            let info = self.dataset(name)?;
            let [id, parent_id, system, prompt, _] = ferrotune_data::import::CANONICAL_COLUMNS;
            let d = &mut cfg.dataset;
            d.train_dataframe = train.display().to_string();
            d.prompt_column = vec![prompt.into()];
            d.answer_column = info.answer_column().into();
            // A table of pairs trains DPO as it is (or causal LM on its chosen answers).
            if let Some(rejected) = info.rejected_answer_column() {
                d.rejected_answer_column = rejected.into();
                d.rejected_prompt_column = ferrotune_config::NO_COLUMN.into();
            }
            d.system_column = system.into();
            d.parent_id_column = parent_id.into();
            d.id_column = id.into();
            if !validation.as_os_str().is_empty() {
                d.validation_strategy = ValidationStrategy::Custom;
                d.validation_dataframe = validation.display().to_string();
            }
        }
        let base = match &options.name {
            Some(n) => n.clone(),
            None => cfg.experiment_name.trim().to_string(),
        };
        cfg.experiment_name = base;
        // An empty name and a seed of -1 are drawn once, so every run of a grid shares them.
        cfg.fill_generated(ferrotune_config::fresh_entropy());
        // Every problem is reported at once, each once (a grid's experiments share most of them).
        let mut errors: Vec<Issue> = Vec::new();
        let mut warnings: Vec<Issue> = Vec::new();
        let mut add = |report: Report| {
            for e in report.errors {
                if !errors.contains(&e) {
                    errors.push(e);
                }
            }
            for w in report.warnings {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
        };
        add(validate(&cfg));
        let runs = crate::grid::expand(&cfg, &cfg.experiment_name);
        let mut planned: Vec<Planned> = Vec::with_capacity(runs.len());
        for (name, mut run) in runs {
            check_name(&name)?;
            if planned.iter().any(|p| p.name == name) {
                return Err(Error::GridNameClash { name });
            }
            run.experiment_name = name.clone();
            run.output_directory = self.home.experiments().join(&name).display().to_string();
            absolute_paths(&mut run)?;
            let mut report = validate(&run);
            report.extend(check_environment(&run));
            for issue in extra_checks(&run) {
                report.error(issue);
            }
            add(report);
            planned.push(Planned { name, config: run });
        }
        let plan = Plan {
            experiments: planned,
            dataset: options.dataset.clone(),
            warnings: warnings.iter().map(|w| w.to_string()).collect(),
        };
        Ok(Review {
            plan,
            errors,
            warnings,
        })
    }

    /// Registers every experiment of `plan` as queued, each with its output folder and `cfg.yaml`, all or none.
    pub fn queue_experiments(&mut self, plan: &Plan) -> Result<Vec<ExperimentInfo>> {
        let _shared = self.lock_registry(false)?;
        let root = self.home.experiments();
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        let path = self.registry.path().to_path_buf();
        let mut created: Vec<PathBuf> = Vec::new();
        let result = self.registry.write(|tx| {
            for p in &plan.experiments {
                if experiment::get(tx, &path, &p.name)?.is_some() {
                    return Err(Error::ExperimentExists {
                        name: p.name.clone(),
                    });
                }
            }
            for p in &plan.experiments {
                let dir = root.join(&p.name);
                if dir.exists() {
                    return Err(Error::ExperimentFolderExists { path: dir });
                }
                std::fs::create_dir(&dir).map_err(io(&dir))?;
                created.push(dir.clone());
                let yaml = p.config.to_yaml();
                files::write_atomically(&RunDir::new(&dir).config(), yaml.as_bytes())?;
                let t = now();
                let info = ExperimentInfo {
                    dataset: plan.dataset.clone(),
                    device: device_of(&p.config),
                    output_dir: dir,
                    created: t,
                    updated: t,
                    config: yaml,
                    ..blank(&p.name)
                };
                experiment::insert(tx, &path, &info)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            for dir in created {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(e);
        }
        self.supervise()?;
        plan.experiments
            .iter()
            .map(|p| self.find_experiment(&p.name))
            .collect()
    }

    /// Every experiment, oldest first, after crash detection.
    pub fn experiments(&mut self) -> Result<Vec<ExperimentInfo>> {
        reconcile(&mut self.registry)?;
        self.supervise()?;
        self.registry.experiments()
    }

    /// The experiment `name`, after crash detection (an error suggests the closest name).
    pub fn experiment(&mut self, name: &str) -> Result<ExperimentInfo> {
        reconcile(&mut self.registry)?;
        self.supervise()?;
        self.find_experiment(name)
    }

    fn find_experiment(&self, name: &str) -> Result<ExperimentInfo> {
        self.registry
            .experiment(name)?
            .ok_or_else(|| experiment::not_found(&self.registry, name))
    }

    /// Stops experiment `name`: SIGTERM to its training process (it checkpoints and exits as `stopped`), or takes
    /// it out of the queue.
    pub fn stop_experiment(&mut self, name: &str) -> Result<Stopped> {
        self.experiment(name)?;
        let path = self.registry.path().to_path_buf();
        let outcome = self.registry.write(|tx| {
            let Some(info) = experiment::get(tx, &path, name)? else {
                return Err(Error::ExperimentNotFound {
                    name: name.into(),
                    suggestion: None,
                });
            };
            match info.status {
                Status::Queued => {
                    let msg = "taken out of the queue before it started";
                    experiment::set_status(tx, &path, info.id, Status::Stopped, Some(msg))?;
                    Ok(Stopped::Unqueued)
                }
                Status::Running => {
                    tx.execute(
                        "UPDATE experiments SET stop_requested = 1 WHERE id = ?1",
                        [info.id],
                    )
                    .map_err(sql(&path))?;
                    let pid = info.pid.unwrap_or(0);
                    let process = ProcessId {
                        pid,
                        start: info.pid_start,
                    };
                    match process::terminate(process) {
                        Ok(true) => Ok(Stopped::Signalled { pid }),
                        Ok(false) => Ok(Stopped::AlreadyEnded),
                        Err(source) => Err(Error::Signal {
                            name: name.into(),
                            pid,
                            source,
                        }),
                    }
                }
                done => Err(wrong(
                    &info.name,
                    done,
                    "stopped",
                    "it is not running or queued",
                )),
            }
        })?;
        if outcome == Stopped::AlreadyEnded {
            reconcile(&mut self.registry)?;
        }
        Ok(outcome)
    }

    /// Queues experiment `name` again to continue from its checkpoint (`train --resume`).
    pub fn resume_experiment(&mut self, name: &str) -> Result<ExperimentInfo> {
        let info = self.experiment(name)?;
        match info.status {
            Status::Stopped | Status::Failed => {}
            Status::Finished => {
                return Err(wrong(
                    name,
                    Status::Finished,
                    "resumed",
                    &format!(
                    "run it again from the beginning with `ferrotune experiment restart {name}`"
                ),
                ))
            }
            s => {
                return Err(wrong(
                    name,
                    s,
                    "resumed",
                    "it has not ended; see `ferrotune experiment list`",
                ))
            }
        }
        let dir = &info.output_dir;
        if !RunDir::new(dir).has_checkpoint() {
            return Err(Error::NoCheckpoint {
                name: name.into(),
                dir: dir.clone(),
            });
        }
        self.requeue(&info, true)
    }

    /// Queues experiment `name` again for a fresh run: its outputs (all but `cfg.yaml`) and metrics are removed.
    pub fn restart_experiment(&mut self, name: &str) -> Result<ExperimentInfo> {
        let info = self.experiment(name)?;
        if !info.status.is_done() {
            return Err(wrong(
                name,
                info.status,
                "restarted",
                &format!("stop it first with `ferrotune experiment stop {name}`"),
            ));
        }
        self.requeue(&info, false)
    }

    fn requeue(&mut self, info: &ExperimentInfo, resume: bool) -> Result<ExperimentInfo> {
        let _shared = self.lock_registry(false)?;
        let path = self.registry.path().to_path_buf();
        self.registry.write(|tx| {
            let Some(current) = experiment::get(tx, &path, &info.name)? else {
                return Err(Error::ExperimentNotFound {
                    name: info.name.clone(),
                    suggestion: None,
                });
            };
            if !current.status.is_done() {
                return Err(wrong(&current.name, current.status, "queued again", "it has not ended"));
            }
            if !resume {
                clear_outputs(&current.output_dir)?;
                tx.execute(
                    "UPDATE experiments SET progress = 0, step = 0, total_steps = NULL, metric_name = NULL,
                         best_metric = NULL, last_metric = NULL, started = NULL WHERE id = ?1",
                    [current.id],
                )
                .and_then(|_| tx.execute("DELETE FROM metrics WHERE experiment = ?1", [current.id]))
                .map_err(sql(&path))?;
            }
            experiment::requeue(tx, &path, current.id, resume)
        })?;
        self.supervise()?;
        self.find_experiment(&info.name)
    }

    /// Removes experiment `name`: its folder and its rows. Refused while it runs (stop it first).
    pub fn delete_experiment(&mut self, name: &str) -> Result<()> {
        let info = self.experiment(name)?;
        let _shared = self.lock_registry(false)?;
        let path = self.registry.path().to_path_buf();
        let trash =
            self.home
                .experiments()
                .join(format!(".trash-{}-{}", info.name, files::unique()));
        let moved = self.registry.write(|tx| {
            let Some(current) = experiment::get(tx, &path, name)? else {
                return Ok(false);
            };
            if current.status == Status::Running {
                return Err(wrong(
                    name,
                    Status::Running,
                    "deleted",
                    &format!(
                        "stop it first with `ferrotune experiment stop {name}`, then delete it"
                    ),
                ));
            }
            experiment::remove(tx, &path, current.id)?;
            let dir = &current.output_dir;
            if dir.is_dir() {
                std::fs::rename(dir, &trash).map_err(io(dir))?;
                return Ok(true);
            }
            Ok(false)
        })?;
        if moved {
            std::fs::remove_dir_all(&trash).map_err(io(&trash))?;
        }
        Ok(())
    }

    /// Renames experiment `old` to `new`: its folder, its `cfg.yaml` (name and output folder) and its row.
    /// Refused while it runs.
    pub fn rename_experiment(&mut self, old: &str, new: &str) -> Result<ExperimentInfo> {
        check_name(new)?;
        self.experiment(old)?;
        let _shared = self.lock_registry(false)?;
        let path = self.registry.path().to_path_buf();
        let new_dir = self.home.experiments().join(new);
        self.registry.write(|tx| {
            let Some(info) = experiment::get(tx, &path, old)? else {
                return Err(Error::ExperimentNotFound {
                    name: old.into(),
                    suggestion: None,
                });
            };
            if info.status == Status::Running {
                return Err(wrong(old, Status::Running, "renamed", &format!(
                    "stop it first with `ferrotune experiment stop {old}`"
                )));
            }
            if experiment::get(tx, &path, new)?.is_some() {
                return Err(Error::ExperimentExists { name: new.into() });
            }
            if new_dir.exists() {
                return Err(Error::ExperimentFolderExists { path: new_dir.clone() });
            }
            let mut cfg = Experiment::from_yaml_str(&info.config, &format!("the settings of `{old}`"))?;
            cfg.experiment_name = new.into();
            cfg.output_directory = new_dir.display().to_string();
            let yaml = cfg.to_yaml();
            if info.output_dir.is_dir() {
                std::fs::rename(&info.output_dir, &new_dir).map_err(io(&info.output_dir))?;
            } else {
                std::fs::create_dir_all(&new_dir).map_err(io(&new_dir))?;
            }
            let written = files::write_atomically(&RunDir::new(&new_dir).config(), yaml.as_bytes())
                .and_then(|()| {
                    tx.execute(
                        "UPDATE experiments SET name = ?2, output_dir = ?3, config = ?4, updated = ?5 WHERE id = ?1",
                        params![info.id, new, new_dir.to_string_lossy(), yaml, now() as i64],
                    )
                    .map(drop)
                    .map_err(sql(&path))
                });
            if written.is_err() && info.output_dir.as_os_str() != new_dir.as_os_str() {
                let _ = std::fs::rename(&new_dir, &info.output_dir);
            }
            written
        })?;
        self.find_experiment(new)
    }

    /// The metric summaries of `names` side by side and the settings in which they differ.
    pub fn compare_experiments(&mut self, names: &[String]) -> Result<Comparison> {
        let experiments = names
            .iter()
            .map(|n| self.experiment(n))
            .collect::<Result<Vec<_>>>()?;
        let configs = experiments
            .iter()
            .map(|e| Experiment::from_yaml_str(&e.config, &format!("the settings of `{}`", e.name)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut differences = Vec::new();
        let mut rows = Vec::new();
        for s in settings() {
            let values: Vec<String> = configs
                .iter()
                .map(|c| yaml_text(c.get(s.key).unwrap_or(Value::Null)))
                .collect();
            let differ = values.iter().any(|v| *v != values[0]);
            if differ && !matches!(s.key, "experiment_name" | "output_directory") {
                differences.push((s.key.to_string(), values.clone()));
            }
            rows.push((s.key.to_string(), values, differ));
        }
        let last = |name: &str| -> Result<Vec<Option<f64>>> {
            experiments
                .iter()
                .map(|e| self.registry.last_value(e.id, name))
                .collect()
        };
        Ok(Comparison {
            last_train_loss: last("train_loss")?,
            last_validation_loss: last("validation_loss")?,
            experiments,
            differences,
            settings: rows,
        })
    }

    /// The log file of experiment `name` (`logs.log` in its folder).
    pub fn experiment_log(&mut self, name: &str) -> Result<PathBuf> {
        Ok(RunDir::new(self.experiment(name)?.output_dir).log())
    }
}

/// A setting's value as one line of YAML.
fn yaml_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => flow(&other),
    }
}

fn flow(value: &Value) -> String {
    match value {
        Value::Sequence(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|v| yaml_text(v.clone()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// Removes everything in a run's folder but `cfg.yaml`.
fn clear_outputs(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return std::fs::create_dir_all(dir).map_err(io(dir));
    };
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        if !RunDir::is_output(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .map_err(io(&path))?;
    }
    Ok(())
}

fn wrong(name: &str, status: Status, action: &'static str, help: &str) -> Error {
    Error::WrongStatus {
        name: name.into(),
        status: status.name(),
        action,
        help: help.into(),
    }
}
