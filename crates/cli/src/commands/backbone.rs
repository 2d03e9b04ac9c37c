//! `ferrotune backbone …`: backbone management.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::printer::Printer;

#[derive(Debug, Subcommand)]
pub enum BackboneCommand {
    /// Convert a GGUF file into a Hugging Face folder (config.json, model.safetensors, tokenizer.json,
    /// tokenizer_config.json with the chat template, generation_config.json).
    ImportGguf {
        /// The `.gguf` file.
        file: PathBuf,
        /// Output folder (must not exist or be empty).
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(cmd: BackboneCommand, printer: &Printer) -> anyhow::Result<()> {
    match cmd {
        BackboneCommand::ImportGguf { file, out } => {
            printer.status(&format!(
                "importing {} into {}",
                file.display(),
                out.display()
            ));
            let summary = ferrotune_model::gguf::import_gguf(&file, &out)
                .with_context(|| format!("cannot import `{}`", file.display()))?;
            printer.line(&format!(
                "imported {} ({} parameters, {} tensors, vocabulary {}) into {}",
                summary.architecture,
                summary.n_params,
                summary.tensors,
                summary.vocab_size,
                summary.out_dir.display()
            ))?;
            Ok(())
        }
    }
}
