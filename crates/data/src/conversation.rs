//! Rows into conversations. Without a parent id column every row is a one-turn conversation. With one, a row's
//! parent is its previous turn, and (as in H2O LLM Studio) every row is a sample whose history is its chain of
//! ancestors; with `limit_chained_samples` only conversation ends (rows that are no one's parent) are samples.

use crate::checks::{self, Columns};
use crate::error::Result;
use crate::settings::{unescape, DatasetSettings};
use crate::table::Table;

/// One row's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub system: String,
    /// The prompt columns' non-empty values joined by the separator.
    pub prompt: String,
    pub answer: String,
}

/// A table's conversations.
#[derive(Debug, Clone)]
pub(crate) struct Conversations {
    /// Each row's conversation root row.
    pub root: Vec<usize>,
    /// The samples: row chains from the root to the sample's row, ordered by that last row.
    pub chains: Vec<Vec<usize>>,
}

/// Chains the rows of `table` (the parent checks run here).
pub(crate) fn conversations(
    table: &Table,
    cols: &Columns,
    limit_chained_samples: bool,
) -> Result<Conversations> {
    let Some((parent_col, id_col)) = cols.chain else {
        return Ok(Conversations {
            root: (0..table.len()).collect(),
            chains: (0..table.len()).map(|r| vec![r]).collect(),
        });
    };
    let parents = checks::parent_rows(table, parent_col, id_col)?;
    let mut is_parent = vec![false; table.len()];
    for p in parents.iter().flatten() {
        is_parent[*p] = true;
    }
    let mut root = vec![usize::MAX; table.len()];
    let mut chains = Vec::new();
    for row in 0..table.len() {
        let mut chain = vec![row];
        let mut node = row;
        while let Some(p) = parents[node] {
            chain.push(p);
            node = p;
        }
        chain.reverse();
        root[row] = chain[0];
        if !limit_chained_samples || !is_parent[row] {
            chains.push(chain);
        }
    }
    Ok(Conversations { root, chains })
}

/// H2O LLM Studio's `personalize` rewrites, in its order: (text, replaced by the name (`true`) or the author,
/// then this suffix).
const PERSONALIZE: &[(&str, bool, &str)] = &[
    ("Open Assistant", true, ""),
    ("Open-Assistant", true, ""),
    ("open-assistant", true, ""),
    ("OpenAssistant", true, ""),
    ("open assistant", true, ""),
    ("Open Assistand", true, ""),
    ("Open Assitant", true, ""),
    ("Open Assistent", true, ""),
    ("Open Assisstant", true, ""),
    ("Open Assitent", true, ""),
    ("Open Assitiant", true, ""),
    ("Open Assistiant", true, ""),
    ("Open Assitan ", true, " "),
    ("Open Assistan ", true, " "),
    ("Open Asistant", true, ""),
    ("Open Assiant", true, ""),
    ("Assistant", true, ""),
    ("ChatGPT", true, ""),
    ("LAION AI", false, ""),
    ("LAION-AI", false, ""),
    ("LAION,", false, ","),
    ("LAION.ai", false, ""),
    ("LAION.", false, "."),
    ("LAION", false, ""),
    ("Laion AI", false, ""),
    ("OpenAI", false, ""),
    ("Open AI", false, ""),
    ("openai", false, ""),
    ("open ai", false, ""),
];

/// `text` with the assistant's identity rewritten to `name` and `author` (H2O's `personalize`).
pub fn personalize(text: &str, name: &str, author: &str) -> String {
    let mut out = text.to_string();
    for (from, is_name, suffix) in PERSONALIZE {
        if out.contains(from) {
            let to = format!("{}{suffix}", if *is_name { name } else { author });
            out = out.replace(from, &to);
        }
    }
    out
}

/// The texts of `row` (personalized when the settings say so: prompts and answer, not the system prompt).
pub(crate) fn turn(table: &Table, cols: &Columns, settings: &DatasetSettings, row: usize) -> Turn {
    let separator = unescape(&settings.prompt_column_separator);
    let rewrite = |text: &str| match &settings.personalize {
        Some((name, author)) => personalize(text, name, author),
        None => text.to_string(),
    };
    let prompt = cols
        .prompt
        .iter()
        .map(|&c| rewrite(table.text(row, c)))
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join(&separator);
    Turn {
        system: cols
            .system
            .map(|c| table.text(row, c).to_string())
            .unwrap_or_default(),
        prompt,
        answer: rewrite(table.text(row, cols.answer)),
    }
}

/// The rejected version of `row`'s turn (preference pairs): its rejected answer, after the rejected prompt when
/// that column is set, else after the same prompt. `None` without a rejected column.
pub(crate) fn rejected_turn(
    table: &Table,
    cols: &Columns,
    settings: &DatasetSettings,
    row: usize,
) -> Option<Turn> {
    let (answer, prompt) = cols.rejected?;
    let mut t = turn(table, cols, settings, row);
    if let Some(prompt) = prompt {
        t.prompt = table.text(row, prompt).to_string();
    }
    t.answer = table.text(row, answer).to_string();
    Some(t)
}

/// A conversation's name: its root row's id, or the root's 0-based row index without ids.
pub(crate) fn conversation_id(table: &Table, cols: &Columns, root: usize) -> String {
    match cols.chain {
        Some((_, id_col)) if !table.text(root, id_col).is_empty() => {
            table.text(root, id_col).to_string()
        }
        _ => root.to_string(),
    }
}

#[cfg(test)]
mod personalize_tests {
    use super::personalize;

    #[test]
    fn identity_answers_are_rewritten_in_h2os_order() {
        assert_eq!(
            personalize("I am Open Assistant, made by LAION. Ask ChatGPT or OpenAI, LAION, or the Assistant.", "Ferro", "Us"),
            "I am Ferro, made by Us. Ask Ferro or Us, Us, or the Ferro."
        );
        // "Open Assistan " keeps its space; "LAION AI" goes before "LAION".
        assert_eq!(
            personalize("Open Assistan here; LAION AI", "N", "A"),
            "N here; A"
        );
        assert_eq!(
            personalize("nothing to change", "N", "A"),
            "nothing to change"
        );
    }
}
