//! `ferrotune doctor`: checks the home and, with --rebuild-index, rebuilds the registry from the files.

use clap::Args;
use ferrotune_store::{Home, Store};

use crate::printer::{command, Printer};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Delete registry.sqlite and rebuild it from every datasets/*/dataset.json and experiments/*/ folder
    /// (cfg.yaml, status.json, metrics.jsonl); waits for running imports; also removes leftovers of interrupted
    /// imports and deletes.
    #[arg(long)]
    rebuild_index: bool,
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
    let unindexed = store.unindexed_datasets()?;
    let experiments = store.unindexed_experiments()?;
    if unindexed.is_empty() && experiments.is_empty() {
        printer.line("ok")?;
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
