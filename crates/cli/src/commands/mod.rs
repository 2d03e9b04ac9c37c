//! One module per subcommand; each has a clap `Args` struct (its doc comments are the help) and a `run`.

mod assets;
mod backbone;
mod chat;
mod config;
mod dataset;
mod dataset_view;
mod demo;
mod doctor;
mod experiment;
mod experiment_view;
mod export;
mod generate;
mod predict;
mod score;
pub mod serve;
mod train;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ferrotune_home::{Home, RunDir};
use ferrotune_model::{Backbone, Device, GenerationConfig};
use ferrotune_store::Store;

use crate::printer::Printer;

/// Ferrotune: fine-tune large language models on your own data.
#[derive(Debug, Parser)]
#[command(
    name = "ferrotune",
    version,
    about = "Ferrotune: fine-tune large language models on your own data, on your own machine."
)]
pub struct Cli {
    /// Print only results (no progress messages).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The embedded default: fine-tune the demo backbone on demo data (~10 min on 2 cores), then chat with it.
    Demo(demo::DemoArgs),
    /// Fine-tune LoRA adapters as an experiment file says (or --resume a run).
    Train(train::TrainArgs),
    /// Score texts: per-line and total negative log-likelihood and perplexity.
    Score(score::ScoreArgs),
    /// Generate a completion for one prompt.
    Generate(generate::GenerateArgs),
    /// Chat interactively with a backbone (streaming; /reset, /exit).
    Chat(chat::ChatArgs),
    /// Apply a run's model to a new file: its rows plus a `prediction` column, as CSV.
    Predict(predict::PredictArgs),
    /// Export a run's model: a merged Hugging Face folder, a GGUF with an Ollama Modelfile, or a llama.cpp LoRA adapter.
    Export(export::ExportArgs),
    /// Manage backbones: import a GGUF file as a Hugging Face folder; register, list and remove named backbones.
    #[command(subcommand)]
    Backbone(backbone::BackboneCommand),
    /// Fetch the demo assets (backbone and datasets) into $FERROTUNE_HOME/assets.
    #[command(subcommand)]
    Assets(assets::AssetsCommand),
    /// Write, check and show experiment files (YAML settings; see docs/settings.md).
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Import, list, show, merge and delete datasets (kept under $FERROTUNE_HOME/datasets).
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Queue experiments and manage them: start, list, show, logs, stop, resume, restart, delete, rename,
    /// compare (kept under $FERROTUNE_HOME/experiments; a runner process runs the queue).
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
    /// Check $FERROTUNE_HOME and its registry; --rebuild-index recreates the registry from the files.
    Doctor(doctor::DoctorArgs),
    /// The no-code web studio: datasets, experiments with live charts, chat and comparison in the browser
    /// (http://127.0.0.1:10101 by default).
    Serve(serve::ServeArgs),
}

/// Runs one command.
pub fn run(command: Command, printer: &Printer) -> anyhow::Result<()> {
    match command {
        Command::Demo(args) => demo::run(args, printer),
        Command::Train(args) => train::run_cmd(args, printer),
        Command::Score(args) => score::run(args, printer),
        Command::Generate(args) => generate::run(args, printer),
        Command::Chat(args) => chat::run(args, printer),
        Command::Predict(args) => predict::run(args, printer),
        Command::Export(args) => export::run(args, printer),
        Command::Backbone(cmd) => backbone::run(cmd, printer),
        Command::Assets(cmd) => assets::run(cmd, printer),
        Command::Config(cmd) => config::run(cmd, printer),
        Command::Dataset(cmd) => dataset::run(cmd, printer),
        Command::Experiment(cmd) => experiment::run(cmd, printer),
        Command::Doctor(args) => doctor::run(args, printer),
        Command::Serve(args) => serve::run(args, printer),
    }
}

/// `err` followed by a `help:` line that only the command line knows (which flag sets what the library names).
pub fn with_help(err: impl Into<anyhow::Error>, help: &str) -> anyhow::Error {
    anyhow::anyhow!("{:#}\nhelp: {help}", err.into())
}

/// Which backbone to load and how.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Backbone: a Hugging Face folder or a `.gguf` file (imported on the fly). Default: the demo backbone
    /// (SmolLM2-135M-Instruct), fetched on first use.
    #[arg(long, value_name = "DIR|FILE.gguf")]
    pub model: Option<PathBuf>,
    /// A LoRA adapter folder in PEFT's format (what `ferrotune train` saves) to apply on the backbone.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Compute dtype, or `int8` / `int4` (NF4) to quantize the backbone's linear weights in blocks of 64
    /// (computing in f32); `int4-dq` also quantizes the blocks' scales.
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16", "f16", "int8", "int4", "int4-dq"])]
    pub dtype: String,
}

impl ModelArgs {
    /// Loads the backbone (fetching the demo one when no --model is given).
    pub fn load(&self, printer: &Printer) -> anyhow::Result<Backbone> {
        let home = Home::from_env();
        let path = match &self.model {
            Some(p) => p.clone(),
            None => ferrotune_home::ensure_demo_backbone(&home, &mut |m| printer.status(m))
                .context("cannot fetch the demo backbone")?,
        };
        let dtype = ferrotune_model::parse_weight_format(&self.dtype)?;
        let device = device()?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
            && !ferrotune_model::backbone::is_imported(&path, &home.backbones())
        {
            printer.status(&format!("importing {} (once)", path.display()));
        }
        let mut backbone = Backbone::load(&path, dtype, &device, &home.backbones())
            .with_context(|| format!("cannot load backbone `{}`", path.display()))?;
        if let Some(adapter) = &self.adapter {
            ferrotune_model::adapter::load_peft(&mut backbone.model, adapter)
                .with_context(|| format!("cannot load adapter `{}`", adapter.display()))?;
        }
        Ok(backbone)
    }
}

/// The compute device: CUDA when built with the `cuda` feature and a GPU is present, else the CPU.
pub fn device() -> anyhow::Result<Device> {
    #[cfg(feature = "cuda")]
    {
        if let Ok(d) = Device::cuda_if_available(0) {
            return Ok(d);
        }
    }
    Ok(Device::Cpu)
}

/// Sampling and stopping settings shared by `generate` and `chat`.
#[derive(Debug, Args)]
pub struct GenerationArgs {
    /// Maximum number of new tokens [default: 256] (at least 1; capped at what the model's context leaves after
    /// the prompt, with a note when this was given).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_new_tokens: Option<usize>,
    /// Minimum number of new tokens before a stop token or string may end the answer.
    #[arg(long, default_value_t = 0)]
    pub min_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens whose probabilities add up to p.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Penalty (> 1) for tokens already in the prompt or answer.
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f64,
    /// Beam search with this many beams (with --temperature 0).
    #[arg(long, default_value_t = 1)]
    pub num_beams: usize,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when this text appears (repeatable); the answer is cut before it.
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop_strings: Vec<String>,
}

impl GenerationArgs {
    /// The default of `--max-new-tokens`.
    pub const DEFAULT_MAX_NEW_TOKENS: usize = 256;

    /// `--max-new-tokens`, or its default.
    pub fn max_new_tokens(&self) -> usize {
        self.max_new_tokens.unwrap_or(Self::DEFAULT_MAX_NEW_TOKENS)
    }

    /// The generation config for `backbone` (its stop token ids plus these settings).
    pub fn config(&self, backbone: &Backbone) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: self.max_new_tokens(),
            min_new_tokens: self.min_new_tokens,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            num_beams: self.num_beams,
            seed: self.seed,
            stop_strings: self.stop_strings.clone(),
            ..backbone.generation_config()
        }
    }
}

/// The run folder `run` names: a folder with `cfg.yaml`, else a registered experiment.
pub(crate) fn run_folder(run: &str) -> anyhow::Result<RunDir> {
    let path = PathBuf::from(run);
    if path.join(ferrotune_home::run::CONFIG_FILE).is_file() {
        return Ok(RunDir::new(path));
    }
    if path.is_dir() {
        anyhow::bail!(
            "`{run}` holds no `{}`: it is not a run folder\nhelp: give the folder `ferrotune train` wrote (its `output_directory`), or an experiment's name",
            ferrotune_home::run::CONFIG_FILE
        );
    }
    let mut store = Store::from_env()?;
    Ok(store.run_dir(run)?)
}
