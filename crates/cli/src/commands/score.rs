//! `ferrotune score`: negative log-likelihood of texts, exactly transformers' `labels=input_ids` loss.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use ferrotune_model::score;

use super::ModelArgs;
use crate::printer::Printer;

/// Score texts from a JSONL file.
///
/// Each input line is `{"text": "..."}`. Prints one JSON line per input, `{"tokens": N, "nll_sum": X,
/// "mean_nll": Y}` (N = predicted positions = tokens − 1), then a summary `{"tokens": T, "mean_nll": M,
/// "perplexity": P}`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// JSONL file with one `{"text": ...}` object per line.
    #[arg(long, value_name = "FILE.jsonl")]
    pub input: PathBuf,
}

/// Reads `{"text": ...}` lines, naming the line of any problem.
fn read_texts(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
    let mut texts = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line =
            line.with_context(|| {
                format!(
                    "`{}` line {n} is not valid UTF-8\nhelp: re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
                    path.display()
                )
            })?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => bail!(
                "`{}` line {n} is not valid JSON ({e})\nhelp: each line must be an object like {{\"text\": \"...\"}}",
                path.display()
            ),
        };
        match value.get("text").and_then(|t| t.as_str()) {
            Some(t) => texts.push(t.to_string()),
            None => bail!(
                "`{}` line {n} has no string field `text`\nhelp: each line must be an object like {{\"text\": \"...\"}}",
                path.display()
            ),
        }
    }
    if texts.is_empty() {
        bail!(
            "`{}` holds no texts (it is empty or only blank lines)\nhelp: write one object like {{\"text\": \"...\"}} per line",
            path.display()
        );
    }
    Ok(texts)
}

pub fn run(args: ScoreArgs, printer: &Printer) -> anyhow::Result<()> {
    let texts = read_texts(&args.input)?;
    let backbone = args.model.load(printer)?;
    let mut scores = Vec::with_capacity(texts.len());
    for text in &texts {
        let s = score::score_text(&backbone.model, &backbone.tokenizer, text)?;
        printer.line(&serde_json::to_string(&s)?)?;
        scores.push(s);
    }
    printer.line(&serde_json::to_string(&score::summarize(&scores))?)?;
    Ok(())
}
