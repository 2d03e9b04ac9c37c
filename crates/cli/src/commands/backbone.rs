//! `ferrotune backbone …`: backbone management.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use ferrotune_store::Store;

use crate::printer::{command, Printer};

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
        /// Also register the result under this name (the studio's Backbones page lists it).
        #[arg(long)]
        register: Option<String>,
    },
    /// Register a Hugging Face folder under a name (the studio's backbone picker offers it).
    Register {
        /// The folder (config.json, *.safetensors, tokenizer.json).
        path: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// The registered backbones (name and folder; `--json` for scripts).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Forget a registered backbone (its folder stays).
    Remove { name: String },
}

pub fn run(cmd: BackboneCommand, printer: &Printer) -> anyhow::Result<()> {
    match cmd {
        BackboneCommand::ImportGguf {
            file,
            out,
            register,
        } => {
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
            if let Some(name) = register {
                Store::from_env()?.register_backbone(&name, &out, Some(&file))?;
                printer.status(&format!("registered as `{name}`"));
            }
            Ok(())
        }
        BackboneCommand::Register { path, name } => {
            let entry = Store::from_env()?.register_backbone(&name, &path, None)?;
            printer.line(&format!(
                "registered `{}`: {}",
                entry.name,
                entry.path.display()
            ))?;
            Ok(())
        }
        BackboneCommand::List { json } => {
            let all = Store::from_env()?.backbones()?;
            if json {
                printer.line(&serde_json::to_string_pretty(&all)?)?;
            } else if all.is_empty() {
                printer.status(&format!(
                    "no backbones registered; `{}`",
                    command("backbone register DIR --name NAME")
                ));
            } else {
                for b in all {
                    printer.line(&format!("{}\t{}", b.name, b.path.display()))?;
                }
            }
            Ok(())
        }
        BackboneCommand::Remove { name } => {
            Store::from_env()?.unregister_backbone(&name)?;
            printer.status(&format!(
                "removed `{name}` from the list (its folder stays)"
            ));
            Ok(())
        }
    }
}
