//! `ferrotune export RUN --out DIR [--format hf|gguf|gguf-adapter] [--dtype …] [--gguf-type …]
//! [--max-shard-size 5GB] [--no-modelfile]`: a run's model as files other tools load (`ferrotune_export`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrotune_export::{export, ExportDtype, ExportFormat, ExportOptions, GgufType, RunSource};
use ferrotune_home::Home;
use indicatif::{ProgressBar, ProgressStyle};

use crate::printer::Printer;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run: an experiment's name, or a run folder (the one holding `cfg.yaml`).
    #[arg(value_name = "RUN")]
    run: String,
    /// The folder to write (must not exist, or be empty); staged beside it and renamed at the end.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// `hf`: a merged Hugging Face folder; `gguf`: DIR/<name>.<gguf-type>.gguf and DIR/Modelfile;
    /// `gguf-adapter`: the LoRA adapter alone as a llama.cpp adapter GGUF.
    #[arg(long, default_value = "hf", value_parser = ExportFormat::ALL.map(|f| f.name()))]
    format: String,
    /// The merged folder's float type (default: the backbone's stored dtype; float16 after an int8/int4 run).
    #[arg(long, value_parser = ExportDtype::ALL.map(|d| d.name()))]
    dtype: Option<String>,
    /// The GGUF's tensor types (llama.cpp's names; the K-quant mixes choose per tensor as llama-quantize does).
    #[arg(long, default_value = "q8_0", value_parser = GgufType::ALL.map(|t| t.name()))]
    gguf_type: String,
    /// Largest safetensors shard of the merged folder (e.g. 5GB, 500MB, 2GiB).
    #[arg(long, default_value = "5GB", value_name = "SIZE")]
    max_shard_size: String,
    /// Write the GGUF without an Ollama Modelfile (e.g. for a chat template the Modelfile cannot translate).
    #[arg(long)]
    no_modelfile: bool,
}

pub fn run(args: ExportArgs, printer: &Printer) -> anyhow::Result<()> {
    let home = Home::from_env();
    let format = ExportFormat::parse(&args.format).context("clap checked the format")?;
    if args.dtype.is_some() && format != ExportFormat::Hf {
        anyhow::bail!(
            "--dtype applies to `--format hf` only\nhelp: choose the GGUF's types with --gguf-type"
        );
    }
    let max_shard_bytes =
        ferrotune_export::parse_size(&args.max_shard_size).with_context(|| {
            format!(
                "--max-shard-size `{}` is not a size\nhelp: write it like 5GB, 500MB or 2GiB",
                args.max_shard_size
            )
        })?;
    let run = super::run_folder(&args.run)?;
    let source = RunSource::resolve(&run, &home)?;
    let mut options = ExportOptions::new(args.out.clone(), format);
    options.dtype = args.dtype.as_deref().and_then(ExportDtype::parse);
    options.gguf_type = GgufType::parse(&args.gguf_type).context("clap checked the type")?;
    options.max_shard_bytes = max_shard_bytes;
    options.modelfile = !args.no_modelfile;
    let bar = ProgressBar::hidden();
    if !printer.is_quiet() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} tensors  [{elapsed_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let result = export(&source, &options, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    });
    bar.finish_and_clear();
    let summary = result.with_context(|| format!("cannot export `{}`", args.run))?;
    for w in &summary.warnings {
        printer.status(&format!("note: {w}"));
    }
    printer.status(&format!(
        "wrote {} ({}, {} merged weights, {:.1} s):",
        summary.out.display(),
        summary.kind,
        summary.merged_modules,
        summary.seconds
    ));
    for (file, bytes) in &summary.files {
        printer.status(&format!("  {file}  {:.1} MB", *bytes as f64 / 1e6));
    }
    Ok(())
}
