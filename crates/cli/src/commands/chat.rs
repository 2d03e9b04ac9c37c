//! `ferrotune chat`: an interactive conversation that keeps history and streams answers.

use std::io::{BufRead, Write};

use clap::Args;
use ferrotune_model::{generate, Message};

use super::{GenerationArgs, ModelArgs};
use crate::printer::Printer;

/// Chat with a backbone. Type a message and press enter; `/reset` clears the history, `/exit` quits.
#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// System message at the start of the conversation.
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub generation: GenerationArgs,
}

pub fn run(args: ChatArgs, printer: &Printer) -> anyhow::Result<()> {
    let backbone = args.model.load(printer)?;
    if backbone.tokenizer.chat_template().is_none() {
        return Err(ferrotune_model::chat_template_missing().into());
    }
    let cfg = args.generation.config(&backbone);
    let fresh = || -> Vec<Message> {
        args.system
            .iter()
            .map(|s| Message::new("system", s.clone()))
            .collect()
    };
    let mut history = fresh();
    printer.status("chat ready: type a message; /reset clears the history, /exit quits");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        print_prompt()?;
        let Some(line) = lines.next() else { break };
        let line = line?;
        let input = line.trim();
        match input {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history = fresh();
                printer.status("history cleared");
                continue;
            }
            _ => {}
        }
        history.push(Message::new("user", input));
        let ids = match backbone.tokenizer.encode_chat(&history) {
            Ok(ids) => ids,
            Err(e) => {
                history.pop();
                printer.error(&e.to_string());
                continue;
            }
        };
        let out = generate(
            &backbone.model,
            &backbone.tokenizer,
            &ids,
            &cfg,
            &mut |piece| {
                let _ = printer.stream(piece);
            },
        )?;
        printer.stream("\n")?;
        history.push(Message::new("assistant", out.text));
    }
    Ok(())
}

fn print_prompt() -> std::io::Result<()> {
    let mut err = std::io::stderr().lock();
    write!(err, "> ")?;
    err.flush()
}
