//! `ferrotune backbone …`: backbone management.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use ferrotune_store::Store;

use super::with_help;
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
            // A name that cannot be registered is refused before the import writes anything.
            if let Some(name) = &register {
                let store = Store::from_env()?;
                ferrotune_store::check_backbone_name(name)
                    .map_err(|e| name_help(e, "--register"))?;
                if store.backbone(name).is_ok() {
                    return Err(name_help(
                        ferrotune_store::Error::BackboneExists { name: name.clone() },
                        "--register",
                    ));
                }
            }
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
                Store::from_env()?
                    .register_backbone(&name, &out, Some(&file))
                    .map_err(|e| name_help(e, "--register"))?;
                printer.status(&format!("registered as `{name}`"));
            }
            Ok(())
        }
        BackboneCommand::Register { path, name } => {
            let entry = Store::from_env()?
                .register_backbone(&name, &path, None)
                .map_err(|e| name_help(e, "--name"))?;
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

/// A registration error; a bad or taken name also says that `flag` sets it.
fn name_help(err: ferrotune_store::Error, flag: &str) -> anyhow::Error {
    match err {
        ferrotune_store::Error::InvalidName { .. }
        | ferrotune_store::Error::BackboneExists { .. } => with_help(
            err,
            &format!("on the command line, `{flag}` sets the backbone's name"),
        ),
        other => other.into(),
    }
}
