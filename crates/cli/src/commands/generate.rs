//! `ferrotune generate`: one completion, streamed to stdout.

use anyhow::Context;
use clap::Args;
use ferrotune_model::{generate, Message};

use super::{GenerationArgs, ModelArgs};
use crate::printer::Printer;

/// Generate a completion for a prompt; prints only the completion on stdout.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt.
    #[arg(long)]
    pub prompt: String,
    /// Wrap the prompt as one user message in the backbone's chat template (with the generation prompt).
    #[arg(long)]
    pub chat: bool,
    /// System message (with --chat).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    #[command(flatten)]
    pub generation: GenerationArgs,
    /// Print prompt length, token counts and decode speed on stderr.
    #[arg(long)]
    pub stats: bool,
}

pub fn run(args: GenerateArgs, printer: &Printer) -> anyhow::Result<()> {
    let backbone = args.model.load(printer)?;
    let prompt_ids = if args.chat {
        if backbone.tokenizer.chat_template().is_none() {
            return Err(super::with_help(
                ferrotune_model::chat_template_missing(),
                "or run without `--chat`",
            ));
        }
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(Message::new("system", system.clone()));
        }
        messages.push(Message::new("user", args.prompt.clone()));
        backbone.tokenizer.encode_chat(&messages)?
    } else {
        backbone.tokenizer.encode(&args.prompt, true)?
    };
    let cfg = args.generation.config(&backbone);
    cfg.validate()?;
    // A request past the model's context is capped there (the model crate stops at it); say so once, up front,
    // when the user asked for it (the default is capped quietly).
    let context = backbone.model.config().max_position_embeddings;
    let room = context.saturating_sub(prompt_ids.len());
    if let Some(asked) = args
        .generation
        .max_new_tokens
        .filter(|&n| room > 0 && n > room)
    {
        printer.status(&format!(
            "note: --max-new-tokens {asked} is more than the model's context leaves: it holds {context} tokens and the prompt takes {}, so at most {room} new tokens are generated",
            prompt_ids.len()
        ));
    }
    let mut write_error = None;
    let out = generate(
        &backbone.model,
        &backbone.tokenizer,
        &prompt_ids,
        &cfg,
        &mut |piece| {
            if write_error.is_none() {
                write_error = printer.stream(piece).err();
            }
        },
    )?;
    if let Some(e) = write_error {
        return Err(e).context("cannot write to stdout");
    }
    printer.stream("\n")?;
    if args.stats {
        eprintln!(
            "{}",
            serde_json::json!({
                "prompt_tokens": prompt_ids.len(),
                "new_tokens": out.token_ids.len(),
                "finish_reason": format!("{:?}", out.finish_reason),
                "prefill_seconds": out.prefill_time.as_secs_f64(),
                "decode_seconds": out.decode_time.as_secs_f64(),
                "decode_tokens_per_second": out.decode_tokens_per_second(),
            })
        );
    }
    Ok(())
}
