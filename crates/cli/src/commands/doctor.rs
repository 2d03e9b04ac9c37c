//! `ferrotune doctor`: checks the home and its run folders (runs that died, leftovers of interrupted writes);
//! `--repair` mends what it finds, `--rebuild-index` rebuilds the registry from the files.

use std::path::PathBuf;

use clap::Args;
use ferrotune_store::run_health::{check_run, run_folders, RunCheck, RunLife};
use ferrotune_store::{Home, Store};

use crate::printer::{command, Printer};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Delete registry.sqlite and rebuild it from every datasets/*/dataset.json and experiments/*/ folder
    /// (cfg.yaml, status.json, metrics.jsonl); waits for running imports; also removes leftovers of interrupted
    /// imports and deletes.
    #[arg(long)]
    rebuild_index: bool,
    /// Mark runs whose process died as failed and remove what their interrupted writes left (the last complete
    /// checkpoint stays, so `train --resume` continues).
    #[arg(long)]
    repair: bool,
    /// Run folders to check besides the home's experiments (the output_directory of a plain `train`).
    #[arg(value_name = "RUN_FOLDER")]
    folders: Vec<PathBuf>,
}

pub fn run(args: DoctorArgs, printer: &Printer) -> anyhow::Result<()> {
    let home = Home::from_env();
    printer.line(&format!("home: {}", home.root().display()))?;
    if args.rebuild_index {
        let report = ferrotune_store::rebuild_index(&home)?;
        for path in &report.removed {
            printer.status(&format!("removed leftover {}", path.display()));
        }
        for (path, reason) in &report.skipped {
            printer.status(&format!("skipped {}: {reason}", path.display()));
        }
        printer.line(&format!(
            "rebuilt {} with {} dataset(s): {}; {} experiment(s): {}",
            home.registry().display(),
            report.datasets.len(),
            report.datasets.join(", "),
            report.experiments.len(),
            report.experiments.join(", ")
        ))?;
        let store = Store::open(home)?;
        if check_runs(&store, &args, printer)? {
            printer.line("ok")?;
        }
        return Ok(());
    }
    let store = Store::open(home.clone())?;
    printer.line(&format!(
        "registry: {} (schema version {})",
        home.registry().display(),
        store.registry().version()?
    ))?;
    printer.line(&format!("datasets: {}", store.datasets()?.len()))?;
    printer.line(&format!(
        "experiments: {}",
        store.registry().experiments()?.len()
    ))?;
    let runs_ok = check_runs(&store, &args, printer)?;
    let unindexed = store.unindexed_datasets()?;
    let experiments = store.unindexed_experiments()?;
    if unindexed.is_empty() && experiments.is_empty() {
        if runs_ok {
            printer.line("ok")?;
        }
        return Ok(());
    }
    if !unindexed.is_empty() {
        printer.line(&format!("not in the registry: {}", unindexed.join(", ")))?;
    }
    if !experiments.is_empty() {
        printer.line(&format!(
            "experiments not in the registry: {}",
            experiments.join(", ")
        ))?;
    }
    printer.line(&format!(
        "help: run `{}`",
        command("doctor --rebuild-index")
    ))?;
    Ok(())
}

/// Reports (and with `--repair` mends) the run folders; whether all were fine.
fn check_runs(store: &Store, args: &DoctorArgs, printer: &Printer) -> anyhow::Result<bool> {
    let mut folders = run_folders(store)?;
    for f in &args.folders {
        if !f.is_dir() {
            anyhow::bail!(
                "run folder `{}` does not exist or is not a folder\nhelp: give the output_directory of a run",
                f.display()
            );
        }
        folders.push(f.clone());
    }
    folders.sort();
    folders.dedup();
    let checks: Vec<RunCheck> = folders.iter().map(|f| check_run(f)).collect();
    let mut fine = true;
    for check in checks.iter().filter(|c| c.needs_repair()) {
        fine = false;
        if let RunLife::Died { pid } = check.life {
            printer.line(&format!(
                "died: {}: {}",
                check.folder.display(),
                ferrotune_store::run_health::died_message(pid)
            ))?;
        }
        for path in &check.leftovers {
            printer.line(&format!("leftover: {}", path.display()))?;
        }
        if args.repair {
            for done in check.repair()? {
                printer.line(&format!("repaired: {done}"))?;
            }
        }
    }
    for check in &checks {
        if let RunLife::Running { pid } = check.life {
            printer.line(&format!("running: {} (pid {pid})", check.folder.display()))?;
        }
    }
    if !fine && !args.repair {
        printer.line(&format!(
            "help: run `{}` to mark died runs failed and remove the leftovers (checkpoints stay)",
            command("doctor --repair")
        ))?;
    }
    Ok(fine || args.repair)
}
