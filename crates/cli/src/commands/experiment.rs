//! `ferrotune experiment …`: queue experiments and manage them. The work is in `ferrotune_store` (the queue,
//! the runner, crash detection); this file parses arguments and prints.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use ferrotune_config::split_override_args;
use ferrotune_store::runner::{RunnerExit, RunnerOptions};
use ferrotune_store::{StartOptions, Stopped, Store};

use super::{experiment_view, with_help};
use crate::printer::{command, Printer};

#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// Validate an experiment file, queue it (one experiment per combination of a grid search's values) and make
    /// sure the runner runs; returns at once.
    Start(StartArgs),
    /// List the experiments with status, progress and metric (and start a runner if some are queued and none
    /// runs).
    List(ListArgs),
    /// Show one experiment: status, progress, metrics, folder, and why it failed or stopped.
    Show(ShowArgs),
    /// Print an experiment's log (logs.log).
    Logs(LogsArgs),
    /// Stop an experiment gracefully (it writes a checkpoint; resume continues it), or take it out of the queue.
    Stop(NameArg),
    /// Queue a stopped or failed experiment again, continuing exactly from its last checkpoint.
    Resume(NameArg),
    /// Queue an ended experiment again for a fresh run (its outputs and metrics are removed; cfg.yaml stays).
    Restart(NameArg),
    /// Delete an experiment: its folder and its registry rows (stop it first if it runs).
    Delete(NameArg),
    /// Rename an experiment (its folder, cfg.yaml and registry row); not while it runs.
    Rename(RenameArgs),
    /// Compare experiments: metric summaries side by side, then only the settings that differ.
    Compare(CompareArgs),
    /// Register an H2O LLM Studio experiment folder (its `cfg.yaml` and PEFT `adapter_model/`) as a finished
    /// experiment, to chat with, predict with and export; the folder itself is only read.
    ImportH2o(ImportH2oArgs),
    /// Save one of an experiment's downloads (config, logs, predictions, adapter) — the same list as the
    /// studio's Downloads tab.
    Download(DownloadArgs),
    /// Run the queue of $FERROTUNE_HOME until it is empty (started by `experiment start`; one per home).
    #[command(hide = true)]
    Runner,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The experiment file (YAML). Grid-enabled settings may list values (with `grid_search: true`):
    /// `learning_rate: [0.0001, 0.00005]`.
    #[arg(value_name = "FILE.yaml")]
    config: PathBuf,
    /// Train on this registered dataset (`ferrotune dataset list`): its canonical training table, and its
    /// validation table when it has one.
    #[arg(long, value_name = "NAME")]
    dataset: Option<String>,
    /// The experiment's name (the base name of a grid's experiments); default: the file's `experiment_name`, else
    /// a drawn adjective-animal name.
    #[arg(long)]
    name: Option<String>,
    /// Print how many experiments would be queued and their names; queue nothing.
    #[arg(long)]
    dry_run: bool,
    /// Settings that override the file: `--training.learning_rate 1e-5`, `--training.lora_r [4,8]` (a grid).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--SECTION.FIELD VALUE"
    )]
    overrides: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (one array of experiment descriptions) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The experiment.
    name: String,
    /// Print the registry row as JSON instead.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The experiment.
    name: String,
    /// Keep printing new lines until the experiment ends.
    #[arg(long, short)]
    follow: bool,
}

/// The one argument of `stop`, `resume`, `restart` and `delete`.
#[derive(Debug, Args)]
pub struct NameArg {
    /// The experiment.
    name: String,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The current name.
    old: String,
    /// The new name (letters, digits, `-`, `_`, `.`).
    new: String,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Two or more experiments.
    #[arg(required = true, num_args = 2..)]
    names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The experiment.
    name: String,
    /// What to save: config, logs, predictions or adapter (a zip of the PEFT folder).
    what: String,
    /// Where to write it; default: its usual file name in the current folder (`NAME-adapter.zip`, …).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// How often `logs --follow` and the runner look for news.
const POLL: Duration = Duration::from_millis(300);

pub fn run(cmd: ExperimentCommand, printer: &Printer) -> anyhow::Result<()> {
    match cmd {
        ExperimentCommand::Start(args) => start(args, printer),
        ExperimentCommand::List(args) => list(args, printer),
        ExperimentCommand::Show(args) => show(args, printer),
        ExperimentCommand::Logs(args) => logs(args, printer),
        ExperimentCommand::Download(args) => download(args, printer),
        ExperimentCommand::Stop(args) => stop(args, printer),
        ExperimentCommand::Resume(args) => resume(args, printer),
        ExperimentCommand::Restart(args) => restart(args, printer),
        ExperimentCommand::Delete(args) => delete(args, printer),
        ExperimentCommand::Rename(args) => rename(args, printer),
        ExperimentCommand::Compare(args) => compare(args, printer),
        ExperimentCommand::ImportH2o(args) => import_h2o(args, printer),
        ExperimentCommand::Runner => runner(printer),
    }
}

/// The flags of `start`, which clap reads only before the first `--section.field` setting.
const START_FLAGS: [&str; 3] = ["--dataset", "--name", "--dry-run"];

fn start(args: StartArgs, printer: &Printer) -> anyhow::Result<()> {
    let mut store = open_store()?;
    if let Some(flag) = args.overrides.iter().find_map(|a| {
        START_FLAGS
            .iter()
            .find(|f| a == *f || a.starts_with(&format!("{f}=")))
    }) {
        anyhow::bail!(
            "`{flag}` came after the `--section.field` settings\nhelp: put `{flag}` before them: `{}`",
            command(&format!(
                "experiment start cfg.yaml {flag} … --training.learning_rate 1e-4"
            ))
        );
    }
    let options = StartOptions {
        config: args.config.into(),
        overrides: split_override_args(&args.overrides)?,
        dataset: args.dataset,
        name: args.name,
    };
    let plan = store
        .plan_experiments(&options, &ferrotune_train::settings::checks_before_training)
        .map_err(name_help)?;
    for w in &plan.warnings {
        printer.status(&format!("warning: {w}"));
    }
    if args.dry_run {
        printer.line(&format!("{} experiment(s):", plan.experiments.len()))?;
        for p in &plan.experiments {
            printer.line(&p.name)?;
        }
        return Ok(());
    }
    let queued = store.queue_experiments(&plan).map_err(name_help)?;
    for info in &queued {
        printer.line(&format!(
            "queued `{}` → {}",
            info.name,
            info.output_dir.display()
        ))?;
    }
    printer.status(&format!(
        "follow with `{}` or `{}`",
        command("experiment list"),
        command("experiment logs NAME -f")
    ));
    Ok(())
}

fn list(args: ListArgs, printer: &Printer) -> anyhow::Result<()> {
    let mut store = open_store()?;
    // Supervision: a runner that died (kill -9) is replaced by the next look at the queue (in the store).
    let all = store.experiments()?;
    if args.json {
        printer.line(&serde_json::to_string_pretty(&all)?)?;
    } else if all.is_empty() {
        printer.status(&format!(
            "no experiments; queue one with `{}`",
            command("experiment start cfg.yaml")
        ));
    } else {
        for line in experiment_view::table(&all) {
            printer.line(&line)?;
        }
    }
    Ok(())
}

fn show(args: ShowArgs, printer: &Printer) -> anyhow::Result<()> {
    let mut store = open_store()?;
    let info = store.experiment(&args.name)?;
    if args.json {
        printer.line(&serde_json::to_string_pretty(&info)?)?;
    } else {
        for line in experiment_view::describe(&store, &info)? {
            printer.line(&line)?;
        }
    }
    Ok(())
}

fn stop(args: NameArg, printer: &Printer) -> anyhow::Result<()> {
    let mut store = open_store()?;
    let name = &args.name;
    match store.stop_experiment(name)? {
        Stopped::Signalled { pid } => printer.line(&format!(
            "stopping `{name}` (sent SIGTERM to process {pid}); it writes a checkpoint, then `{}` continues it",
            command(&format!("experiment resume {name}"))
        ))?,
        Stopped::Unqueued => printer.line(&format!("took `{name}` out of the queue"))?,
        Stopped::AlreadyEnded => {
            let info = store.experiment(name)?;
            printer.line(&format!(
                "`{name}` had already ended: {}",
                info.status.name()
            ))?
        }
    }
    Ok(())
}

fn resume(args: NameArg, printer: &Printer) -> anyhow::Result<()> {
    let mut store = open_store()?;
    store.resume_experiment(&args.name)?;
    printer.line(&format!(
        "queued `{}` to resume from its checkpoint",
        args.name
    ))?;
    Ok(())
}

fn restart(args: NameArg, printer: &Printer) -> anyhow::Result<()> {
    let mut store = open_store()?;
    store.restart_experiment(&args.name)?;
    printer.line(&format!("queued `{}` for a fresh run", args.name))?;
    Ok(())
}

fn delete(args: NameArg, printer: &Printer) -> anyhow::Result<()> {
    open_store()?.delete_experiment(&args.name)?;
    printer.line(&format!("deleted `{}`", args.name))?;
    Ok(())
}

fn rename(args: RenameArgs, printer: &Printer) -> anyhow::Result<()> {
    let info = open_store()?.rename_experiment(&args.old, &args.new)?;
    printer.line(&format!(
        "renamed `{}` to `{}` ({})",
        args.old,
        args.new,
        info.output_dir.display()
    ))?;
    Ok(())
}

fn compare(args: CompareArgs, printer: &Printer) -> anyhow::Result<()> {
    let comparison = open_store()?.compare_experiments(&args.names)?;
    for line in experiment_view::compare(&comparison) {
        printer.line(&line)?;
    }
    Ok(())
}

/// A planning or queueing error about the experiments' names, with the flag that sets them.
fn name_help(err: ferrotune_store::Error) -> anyhow::Error {
    use ferrotune_store::Error::{ExperimentExists, GridNameClash, InvalidExperimentName};
    if matches!(
        err,
        InvalidExperimentName { .. } | ExperimentExists { .. } | GridNameClash { .. }
    ) {
        return with_help(
            err,
            "on the command line, `--name` sets the experiment's name (a grid's base name)",
        );
    }
    err.into()
}

/// The store of the home, supervising its queue with this binary (a queued experiment always finds a runner).
fn open_store() -> anyhow::Result<Store> {
    let exe =
        std::env::current_exe().context("cannot find the ferrotune binary to start the runner")?;
    Ok(Store::from_env()?.with_runner(exe))
}

fn runner(printer: &Printer) -> anyhow::Result<()> {
    // Like every command, make the home and bring its registry up to date first; the runner opens its own.
    let home = open_store()?.home().clone();
    let options = RunnerOptions {
        exe: std::env::current_exe().context("cannot find the ferrotune binary")?,
        poll: POLL,
    };
    let exit = ferrotune_store::runner::run(&home, &options, &mut |e| {
        printer.error(&format!("runner (pid {}): {e:#}", std::process::id()))
    })?;
    match exit {
        RunnerExit::AlreadyRunning => printer.status("a runner already serves this home"),
        RunnerExit::Done { started } => {
            printer.status(&format!("runner: queue empty after {started} run(s)"))
        }
    }
    Ok(())
}

/// Prints the log; with `follow`, keeps printing what is appended until the experiment has ended.
fn logs(args: LogsArgs, printer: &Printer) -> anyhow::Result<()> {
    let (name, follow) = (args.name.as_str(), args.follow);
    let mut store = open_store()?;
    let mut log = ferrotune_home::LineFollower::new(store.experiment_log(name)?);
    loop {
        // Read the status before the file, so the last lines written before the end are printed.
        let ended = store.experiment(name)?.status.is_done() || !follow;
        let new = log
            .read()
            .with_context(|| format!("cannot read `{}`", log.path().display()))?;
        for line in new.lines {
            printer.line(&line)?;
        }
        if ended {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

/// Writes one of the experiment's downloads to a file.
fn download(args: DownloadArgs, printer: &Printer) -> anyhow::Result<()> {
    let artifact = ferrotune_store::Artifact::parse(&args.what)?;
    let file = open_store()?.artifact(&args.name, artifact)?;
    let target = args
        .output
        .unwrap_or_else(|| PathBuf::from(&file.file_name));
    ferrotune_home::atomic::write(&target, &file.bytes)
        .with_context(|| format!("cannot write `{}`", target.display()))?;
    printer.line(&format!(
        "saved {} of `{}` to {} ({} bytes)",
        artifact.title(),
        args.name,
        target.display(),
        file.bytes.len()
    ))?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct ImportH2oArgs {
    /// The H2O LLM Studio experiment folder (holding `cfg.yaml` and `adapter_model/`).
    #[arg(value_name = "DIR")]
    dir: std::path::PathBuf,
    /// The experiment's name here.
    #[arg(long)]
    name: String,
}

fn import_h2o(args: ImportH2oArgs, printer: &Printer) -> anyhow::Result<()> {
    let mut store = ferrotune_store::Store::from_env()?;
    let info = store.import_h2o_experiment(&args.dir, &args.name)?;
    printer.status(&format!(
        "registered `{}` ({}, finished) in {}; chat with it in the studio, or `ferrotune export {}`",
        info.name,
        args.dir.display(),
        info.output_dir.display(),
        info.name
    ));
    Ok(())
}
