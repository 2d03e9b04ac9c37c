//! `ferrotune dataset …`: import, list, show, merge and delete datasets. The work is in `ferrotune_store`.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand};
use ferrotune_store::{ImportOptions, Mapping, Shape, Split, Store};

use super::{dataset_view, with_help};
use crate::printer::{command, Printer};

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Import a CSV, Parquet, JSON or JSONL file (or a folder or .zip of them) as a dataset: recognises flat
    /// columns, Alpaca, ShareGPT, OpenAI messages and plain text, converts them to the canonical table (id,
    /// parent_id, system, prompt, answer) and computes statistics.
    Import(ImportArgs),
    /// List the datasets.
    List(ListArgs),
    /// Show a dataset: files, statistics as terminal histograms, and sample rows.
    Show(ShowArgs),
    /// Add the rows of another file (or folder or .zip) to a dataset; statistics are recomputed.
    Merge(MergeArgs),
    /// Delete a dataset: its folder (canonical tables, originals) and its registry row.
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Training data: a .csv, .parquet, .json or .jsonl file, a folder of them, or a .zip archive of them.
    #[arg(value_name = "FILE|DIR")]
    path: PathBuf,
    /// The dataset's name (letters, digits, `-`, `_`, `.`).
    #[arg(long)]
    name: String,
    /// Validation data, in the same forms.
    #[arg(long, value_name = "FILE|DIR")]
    validation: Option<PathBuf>,
    #[command(flatten)]
    mapping: MappingArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (one array of dataset descriptions) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The dataset.
    name: String,
    /// Also print the first N rows of the training table.
    #[arg(long, value_name = "N", default_value_t = 0)]
    sample: usize,
    /// Print the dataset description (dataset.json) as JSON instead.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The dataset.
    name: String,
    /// The file to add.
    file: PathBuf,
    /// Add to the validation table instead of the training table.
    #[arg(long)]
    validation: bool,
    #[command(flatten)]
    mapping: MappingArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The dataset.
    name: String,
}

/// Which columns hold what; anything not given is recognised from the file's columns.
#[derive(Debug, Args)]
pub struct MappingArgs {
    /// The file layout (default: recognised from the columns).
    #[arg(long, value_name = "LAYOUT", value_parser = PossibleValuesParser::new(Shape::ALL.map(Shape::name)))]
    format: Option<String>,
    /// Prompt column of a flat file (repeat to join several with a blank line).
    #[arg(long = "prompt-column", value_name = "COLUMN")]
    prompt: Vec<String>,
    /// Answer column of a flat file (with --format text: the text column).
    #[arg(long = "answer-column", value_name = "COLUMN")]
    answer: Option<String>,
    /// System prompt column.
    #[arg(long = "system-column", value_name = "COLUMN")]
    system: Option<String>,
    /// Column with each row's id.
    #[arg(long = "id-column", value_name = "COLUMN")]
    id: Option<String>,
    /// Column with the id of the previous turn (chains the rows of a flat file into conversations).
    #[arg(long = "parent-id-column", value_name = "COLUMN")]
    parent_id: Option<String>,
    /// Rejected answer column of preference pairs (the answer column is then the chosen one); recognised by name
    /// (`rejected`, `rejected_response`) when not given.
    #[arg(long = "rejected-column", value_name = "COLUMN")]
    rejected: Option<String>,
}

impl MappingArgs {
    /// The flag of each mapping setting, named as the library's errors name it.
    const FLAGS: [(&'static str, &'static str); 7] = [
        ("mapping.shape", "--format"),
        ("mapping.prompt", "--prompt-column"),
        ("mapping.answer", "--answer-column"),
        ("mapping.system", "--system-column"),
        ("mapping.id", "--id-column"),
        ("mapping.parent_id", "--parent-id-column"),
        ("mapping.rejected", "--rejected-column"),
    ];

    fn mapping(self) -> Mapping {
        Mapping {
            shape: self.format.as_deref().and_then(Shape::from_name),
            prompt: self.prompt,
            answer: self.answer,
            system: self.system,
            id: self.id,
            parent_id: self.parent_id,
            rejected: self.rejected,
        }
    }
}

pub fn run(cmd: DatasetCommand, printer: &Printer) -> anyhow::Result<()> {
    match cmd {
        DatasetCommand::Import(args) => import(args, printer),
        DatasetCommand::List(args) => list(args, printer),
        DatasetCommand::Show(args) => show(args, printer),
        DatasetCommand::Merge(args) => merge(args, printer),
        DatasetCommand::Delete(args) => delete(args, printer),
    }
}

fn import(args: ImportArgs, printer: &Printer) -> anyhow::Result<()> {
    let mut store = Store::from_env()?;
    printer.status(&format!("importing {}", args.path.display()));
    let info = store
        .import_dataset(&ImportOptions {
            name: args.name,
            train: args.path,
            validation: args.validation,
            mapping: args.mapping.mapping(),
        })
        .map_err(|e| import_help(e, true))?;
    let validation = info
        .validation
        .as_ref()
        .map(|v| format!(", {} validation rows", v.rows))
        .unwrap_or_default();
    printer.line(&format!(
        "imported `{}`: {} rows, {} conversations{validation} ({})",
        info.name, info.train.rows, info.train.statistics.conversations, info.format
    ))?;
    printer.line(&format!(
        "train table: {}",
        store
            .dataset_dir(&info.name)
            .join(&info.train.file)
            .display()
    ))?;
    Ok(())
}

fn list(args: ListArgs, printer: &Printer) -> anyhow::Result<()> {
    let store = Store::from_env()?;
    let datasets = store.datasets()?;
    if args.json {
        printer.line(&serde_json::to_string_pretty(&datasets)?)?;
    } else if datasets.is_empty() {
        printer.status(&format!(
            "no datasets; import one with `{}`",
            command("dataset import FILE --name NAME")
        ));
    } else {
        for line in dataset_view::table(&datasets) {
            printer.line(&line)?;
        }
    }
    let unindexed = store.unindexed_datasets()?;
    if !unindexed.is_empty() {
        printer.status(&format!(
            "note: {} dataset folder(s) are not in the registry ({}); run `{}`",
            unindexed.len(),
            unindexed.join(", "),
            command("doctor --rebuild-index")
        ));
    }
    Ok(())
}

fn show(args: ShowArgs, printer: &Printer) -> anyhow::Result<()> {
    let store = Store::from_env()?;
    let info = store.dataset(&args.name)?;
    if args.json {
        printer.line(&serde_json::to_string_pretty(&info)?)?;
        return Ok(());
    }
    let dir = store.dataset_dir(&args.name);
    for line in dataset_view::describe(&info, &dir) {
        printer.line(&line)?;
    }
    if args.sample > 0 {
        let rows = store.sample(&args.name, Split::Train, args.sample)?;
        for line in dataset_view::sample(&rows) {
            printer.line(&line)?;
        }
    }
    Ok(())
}

fn merge(args: MergeArgs, printer: &Printer) -> anyhow::Result<()> {
    let mut store = Store::from_env()?;
    let split = if args.validation {
        Split::Validation
    } else {
        Split::Train
    };
    let info = store
        .merge_dataset(&args.name, &args.file, &args.mapping.mapping(), split)
        .map_err(|e| import_help(e, false))?;
    let rows = match split {
        Split::Train => info.train.rows,
        Split::Validation => info.validation.as_ref().map_or(0, |v| v.rows),
    };
    printer.line(&format!(
        "merged {} into `{}`: {rows} {} rows",
        args.file.display(),
        args.name,
        split.name()
    ))?;
    Ok(())
}

fn delete(args: DeleteArgs, printer: &Printer) -> anyhow::Result<()> {
    Store::from_env()?.delete_dataset(&args.name)?;
    printer.line(&format!("deleted `{}`", args.name))?;
    Ok(())
}

/// An import or merge error, with the flags of the mapping settings it names (`mapping.prompt`, …) and, when
/// `name_flag` (the name came from `--name`), of the name.
fn import_help(err: ferrotune_store::Error, name_flag: bool) -> anyhow::Error {
    let text = err.to_string();
    let mut flags: Vec<String> = MappingArgs::FLAGS
        .iter()
        .filter(|(setting, _)| text.contains(&format!("`{setting}`")))
        .map(|(setting, flag)| format!("`{flag}` sets `{setting}`"))
        .collect();
    if name_flag
        && matches!(
            err,
            ferrotune_store::Error::DatasetExists { .. }
                | ferrotune_store::Error::InvalidName { .. }
        )
    {
        flags.push("`--name` sets the dataset's name".into());
    }
    if flags.is_empty() {
        return err.into();
    }
    with_help(err, &format!("on the command line, {}", flags.join(", ")))
}
