//! A new file's rows as generation prompts, mapped like the run's training data (`ferrotune predict`): the same
//! prompt, system and parent-id columns and the same markers or chat template; the answer column may be
//! absent (new data has no answers), and so may the id and parent-id columns (every row is then a conversation
//! of its own). Every row is a prompt, with its conversation's earlier turns as history.

use std::path::Path;

use crate::checks;
use crate::conversation::{self, Turn};
use crate::dataset::read_table;
use crate::error::{Error, Result};
use crate::format::{Encoder, TurnIds};
use crate::settings::DatasetSettings;
use crate::table::Table;
use crate::tokenizer::TextTokenizer;

/// A file read for prediction: its table (written back with the predictions) and one prompt per row.
#[derive(Debug, Clone)]
pub struct PredictionInput {
    pub table: Table,
    /// In row order.
    pub prompts: Vec<Prompt>,
}

/// The generation prompt of one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The row of the table.
    pub row: usize,
    /// What generation continues (cut to `max_length` from the front, like training samples).
    pub ids: Vec<u32>,
}

/// Reads `path` as `settings` map training data (its `train_dataframe` is not read) and builds each row's prompt.
pub fn prediction_prompts(
    settings: &DatasetSettings,
    tokenizer: &TextTokenizer,
    path: &Path,
) -> Result<PredictionInput> {
    let table = read_table(path)?;
    if table.is_empty() {
        return Err(Error::EmptyDataset {
            path: path.to_path_buf(),
            help: "the file needs a header (or keys) and at least one row to predict".into(),
        });
    }
    prompts_of_table(settings, tokenizer, table)
}

/// The prompt of one typed text, formatted as the training prompts are: the text in the first prompt column
/// (the other prompt columns empty, no system text, no history).
pub fn prompt_of_text(
    settings: &DatasetSettings,
    tokenizer: &TextTokenizer,
    text: &str,
) -> Result<Vec<u32>> {
    let mut columns = settings.prompt_column.clone();
    if columns.is_empty() {
        columns.push("prompt".into());
    }
    let mut table = Table::new(Path::new("the typed text"), columns.clone());
    let mut row = vec![None; columns.len()];
    row[0] = Some(text.to_string());
    table.push(row, crate::table::RowOrigin::Record(1));
    let mut settings = settings.clone();
    settings.prompt_column = columns;
    settings.system_column = None;
    settings.parent_id_column = None;
    settings.id_column = None;
    let input = prompts_of_table(&settings, tokenizer, table)?;
    Ok(input
        .prompts
        .into_iter()
        .next()
        .map(|p| p.ids)
        .unwrap_or_default())
}

fn prompts_of_table(
    settings: &DatasetSettings,
    tokenizer: &TextTokenizer,
    table: Table,
) -> Result<PredictionInput> {
    let mut settings = settings.clone();
    // Every row is predicted; pairs and answers are not needed.
    settings.limit_chained_samples = false;
    settings.rejected_answer_column = None;
    settings.rejected_prompt_column = None;
    // Labels are what is predicted: the file need not have them.
    settings.targets = None;
    // New data is often single turns without ids: the chain columns are used only when the file has them.
    let has = |c: &Option<String>| c.as_ref().is_some_and(|c| table.column(c).is_some());
    if !has(&settings.parent_id_column) {
        settings.parent_id_column = None;
        settings.id_column = None;
    }
    let mut lookup = table.clone();
    if lookup.column(&settings.answer_column).is_none() {
        lookup.columns.push(settings.answer_column.clone());
    }
    let cols = checks::resolve_columns(&lookup, &settings).map_err(|e| match e {
        // Name the file's own columns, not the stand-in answer column.
        Error::MissingColumn {
            path,
            column,
            setting,
            suggestion,
            ..
        } => Error::MissingColumn {
            path,
            column,
            setting,
            columns: table.columns.clone(),
            suggestion,
        },
        other => other,
    })?;
    let convs = conversation::conversations(&lookup, &cols, false)?;
    let encoder = Encoder::new(&settings, tokenizer)?;
    let turns: Vec<Turn> = (0..lookup.len())
        .map(|r| conversation::turn(&lookup, &cols, &settings, r))
        .collect();
    let mut prompts = Vec::with_capacity(lookup.len());
    for chain in &convs.chains {
        let end = chain[chain.len() - 1];
        // The row's own answer (if the file has one) is what the model is asked for: it is left out.
        let mut last = turns[end].clone();
        last.answer.clear();
        let mut chain_turns: Vec<&Turn> = chain.iter().map(|&r| &turns[r]).collect();
        *chain_turns.last_mut().expect("a chain has a row") = &last;
        let ids: Vec<TurnIds> = chain_turns
            .iter()
            .map(|t| encoder.turn_ids(t))
            .collect::<Result<_>>()?;
        let id_refs: Vec<&TurnIds> = ids.iter().collect();
        let sample = encoder.sample(&chain_turns, &id_refs, String::new(), end)?;
        let len = sample.prompt_len.max(1).min(sample.input_ids.len());
        prompts.push(Prompt {
            row: end,
            ids: sample.input_ids[..len].to_vec(),
        });
    }
    prompts.sort_by_key(|p| p.row);
    Ok(PredictionInput { table, prompts })
}
