//! `ferrotune assets …`: the demo assets.

use clap::Subcommand;
use ferrotune_home::Home;

use crate::printer::Printer;

#[derive(Debug, Subcommand)]
pub enum AssetsCommand {
    /// Download (once) and unpack the demo backbone and datasets; prints their paths.
    Fetch,
}

pub fn run(cmd: AssetsCommand, printer: &Printer) -> anyhow::Result<()> {
    match cmd {
        AssetsCommand::Fetch => {
            let home = Home::from_env();
            let backbone = ferrotune_home::ensure_demo_backbone(&home, &mut |m| printer.status(m))?;
            let datasets = ferrotune_home::ensure_demo_datasets(&home, &mut |m| printer.status(m))?;
            printer.line(&format!("backbone: {}", backbone.display()))?;
            printer.line(&format!("datasets: {}", datasets.display()))?;
            Ok(())
        }
    }
}
