//! `ferrotune config …`: write, check and show experiment files. The work is in `ferrotune_config`.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use ferrotune_config::{
    check_environment, load_with_overrides, split_override_args, validate, Experiment, Issue,
    ProblemType,
};

use crate::printer::Printer;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write the default experiment file, with a `# help` comment above every setting.
    Init(InitArgs),
    /// Check an experiment file: every setting, then the files, backbone and disk it names. Prints every error
    /// and warning; exits non-zero when there are errors.
    Validate(ValidateArgs),
    /// Print the experiment as it runs: defaults, then the file, then the command-line overrides.
    Show(ShowArgs),
    /// Convert an H2O LLM Studio `cfg.yaml` into a Ferrotune experiment file: its settings under Ferrotune's
    /// names with every other setting at its default, and a comment on each H2O key that was left out and why.
    ImportH2o(ImportH2oArgs),
}

#[derive(Debug, Args)]
pub struct ImportH2oArgs {
    /// The H2O LLM Studio experiment file (its `cfg.yaml`).
    #[arg(value_name = "FILE.yaml")]
    file: PathBuf,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE.yaml")]
    out: Option<PathBuf>,
    /// Replace the file if it exists.
    #[arg(long, requires = "out")]
    force: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE.yaml")]
    out: Option<PathBuf>,
    /// Replace the file if it exists.
    #[arg(long, requires = "out")]
    force: bool,
    /// The problem type, with its defaults (e.g. DPO's `answer_column: chosen_response` and `loss_function: DPOLoss`).
    #[arg(long, value_name = "TYPE", default_value = "text_causal_language_modeling",
          value_parser = clap::builder::PossibleValuesParser::new(ProblemType::NAMES))]
    problem_type: String,
}

/// An experiment file and the command-line overrides that follow it.
#[derive(Debug, Args)]
pub struct LayersArgs {
    /// The experiment file (YAML).
    #[arg(value_name = "FILE.yaml")]
    config: PathBuf,
    /// Settings that override the file: `--training.learning_rate 1e-5`, `--dataset.prompt_column=a,b`. Every key
    /// is in docs/settings.md. They come after the file.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--SECTION.FIELD VALUE"
    )]
    overrides: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Check only the settings, not the files, backbone and disk they name.
    #[arg(long)]
    settings_only: bool,
    #[command(flatten)]
    layers: LayersArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Put each setting's help above it, as `config init` does.
    #[arg(long)]
    comments: bool,
    #[command(flatten)]
    layers: LayersArgs,
}

pub fn run(cmd: ConfigCommand, printer: &Printer) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Init(args) => init(args, printer),
        ConfigCommand::Validate(args) => validate_file(args, printer),
        ConfigCommand::Show(args) => show(args, printer),
        ConfigCommand::ImportH2o(args) => import_h2o(args, printer),
    }
}

fn import_h2o(args: ImportH2oArgs, printer: &Printer) -> anyhow::Result<()> {
    let cfg = Experiment::load(&args.file)?;
    let text = ferrotune_config::h2o::import_text(&cfg, &format!("`{}`", args.file.display()));
    let Some(path) = args.out else {
        printer.stream(&text)?;
        return Ok(());
    };
    if path.exists() && !args.force {
        bail!(
            "`{}` already exists\nhelp: pass --force to replace it",
            path.display()
        );
    }
    ferrotune_home::atomic::write(&path, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", path.display()))?;
    printer.status(&format!(
        "wrote {} ({} H2O keys left out, named at its top)",
        path.display(),
        cfg.ignored.len()
    ));
    Ok(())
}

fn init(args: InitArgs, printer: &Printer) -> anyhow::Result<()> {
    let problem_type = ProblemType::from_name(&args.problem_type)
        .expect("clap accepts only the problem types' names");
    let cfg = Experiment::for_problem(problem_type);
    let Some(path) = args.out else {
        printer.stream(&cfg.to_yaml())?;
        return Ok(());
    };
    if path.exists() && !args.force {
        bail!(
            "`{}` already exists\nhelp: pass --force to replace it",
            path.display()
        );
    }
    cfg.save(&path)?;
    printer.status(&format!("wrote {}", path.display()));
    Ok(())
}

fn load(layers: &LayersArgs) -> anyhow::Result<Experiment> {
    let overrides = split_override_args(&layers.overrides)?;
    Ok(load_with_overrides(Some(&layers.config), &overrides)?)
}

fn validate_file(args: ValidateArgs, printer: &Printer) -> anyhow::Result<()> {
    let cfg = load(&args.layers)?;
    let mut report = validate(&cfg);
    for issue in ferrotune_train::settings::unsupported(&cfg) {
        report.error(issue);
    }
    if !args.settings_only {
        report.extend(check_environment(&cfg));
        for issue in ferrotune_train::settings::column_issues(&cfg) {
            report.error(issue);
        }
    }
    for issue in &report.errors {
        printer.line(&format!("error: {}", indent_help(issue)))?;
    }
    for issue in &report.warnings {
        printer.line(&format!("warning: {}", indent_help(issue)))?;
    }
    let file = args.layers.config.display();
    let warnings = plural(report.warnings.len(), "warning");
    if !report.is_ok() {
        bail!(
            "`{file}` has {} ({warnings})",
            plural(report.errors.len(), "error")
        );
    }
    printer.line(&format!("`{file}` is valid ({warnings})"))?;
    Ok(())
}

fn show(args: ShowArgs, printer: &Printer) -> anyhow::Result<()> {
    let cfg = load(&args.layers)?;
    let yaml = if args.comments {
        cfg.to_yaml()
    } else {
        cfg.to_yaml_compact()
    };
    printer.stream(&yaml)?;
    Ok(())
}

fn indent_help(issue: &Issue) -> String {
    issue.to_string().replace("\nhelp:", "\n  help:")
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
