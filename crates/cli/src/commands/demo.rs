//! `ferrotune demo`: the embedded default — fine-tune the demo backbone on a sample of the demo data, then answer
//! a chat message with the result.

use anyhow::Context;
use clap::Args;
use ferrotune_config::{apply_overrides, split_override_args, Experiment};
use ferrotune_model::{generate, Message};

use super::GenerationArgs;
use crate::printer::{command, Printer};

/// The demo experiment (`demo.yaml` beside this file, built into the binary).
const DEMO_CONFIG: &str = include_str!("demo.yaml");

/// Fine-tune the demo backbone (SmolLM2-135M-Instruct) on a sample of alpaca_en_demo (about 10 minutes on
/// 2 cores), then print a chat answer from the fine-tuned model.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The chat message answered after training.
    #[arg(long, default_value = "Give three tips for staying healthy.")]
    pub prompt: String,
    /// Settings that override the demo experiment: `--training.epochs 2`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--SECTION.FIELD VALUE"
    )]
    pub overrides: Vec<String>,
}

pub fn run(args: DemoArgs, printer: &Printer) -> anyhow::Result<()> {
    let mut cfg = Experiment::from_yaml_str(DEMO_CONFIG, "the built-in demo experiment")?;
    apply_overrides(&mut cfg, &split_override_args(&args.overrides)?)?;
    let summary = super::train::train(cfg, false, printer)?;
    printer.line(&serde_json::to_string(&summary)?)?;
    let adapter = summary
        .adapter_dir
        .clone()
        .context("the demo run saved no adapter")?;
    // The chat afterwards loads what the run trained, as every trained model is loaded.
    let home = ferrotune_home::Home::from_env();
    let device = super::device()?;
    let run = ferrotune_home::RunDir::new(&summary.output_dir);
    let backbone =
        ferrotune_train::load::TrainedModel::of_run(&run, &home, &device)?.load(&home, &device)?;
    let ids = backbone
        .tokenizer
        .encode_chat(&[Message::new("user", args.prompt.clone())])?;
    let gen = GenerationArgs {
        max_new_tokens: Some(128),
        min_new_tokens: 0,
        temperature: 0.0,
        top_k: None,
        top_p: None,
        repetition_penalty: 1.1,
        num_beams: 1,
        seed: 0,
        stop_strings: Vec::new(),
    };
    printer.status(&format!(
        "\nuser: {}\nassistant (fine-tuned, adapter {}):",
        args.prompt,
        adapter.display()
    ));
    generate(
        &backbone.model,
        &backbone.tokenizer,
        &ids,
        &gen.config(&backbone),
        &mut |piece| {
            let _ = printer.stream(piece);
        },
    )?;
    printer.stream("\n")?;
    printer.status(&format!(
        "\nchat with it: {}\nthe run's files: {}",
        command(&format!("chat --adapter {}", adapter.display())),
        summary.output_dir.display()
    ));
    Ok(())
}
