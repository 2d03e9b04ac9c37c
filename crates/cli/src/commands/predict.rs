//! `ferrotune predict RUN --input FILE --output FILE.csv`: a run's model applied to new data
//! (`ferrotune_train::predict`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrotune_home::Home;
use ferrotune_train::predict::{predict, PredictRequest};
use indicatif::{ProgressBar, ProgressStyle};

use crate::printer::Printer;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The run: an experiment's name, or a run folder (the one holding `cfg.yaml`, e.g. from `ferrotune train`).
    #[arg(value_name = "RUN")]
    run: String,
    /// The rows to predict: a .csv, .parquet, .json or .jsonl file with the training data's prompt columns
    /// (the answer column may be missing).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// The CSV to write: the input's columns plus `prediction` (written to FILE.csv.partial until done).
    #[arg(long, value_name = "FILE.csv")]
    output: PathBuf,
    /// Rows per batch: the output is flushed and the progress bar moves after each batch.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    batch_size: usize,
}

pub fn run(args: PredictArgs, printer: &Printer) -> anyhow::Result<()> {
    let home = Home::from_env();
    let run = super::run_folder(&args.run)?;
    if args.output.exists() && args.output.is_dir() {
        anyhow::bail!(
            "`{}` is a folder\nhelp: --output names the CSV file to write",
            args.output.display()
        );
    }
    let bar = ProgressBar::hidden();
    if !printer.is_quiet() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} rows  [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let device = super::device()?;
    let request = PredictRequest {
        run: &run,
        home: &home,
        input: &args.input,
        output: &args.output,
        batch_size: args.batch_size,
        device: &device,
    };
    let result = predict(&request, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let summary = result.with_context(|| format!("cannot predict `{}`", args.input.display()))?;
    printer.status(&format!(
        "wrote {} ({} rows, {:.1} s, {:.1} tokens/s)",
        summary.output.display(),
        summary.rows,
        summary.seconds,
        summary.tokens as f64 / summary.seconds.max(1e-9)
    ));
    Ok(())
}
