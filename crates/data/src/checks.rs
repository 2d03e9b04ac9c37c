//! Checks of a table against the settings, run before anything is tokenized: the named columns exist (with the
//! closest name suggested), some answer is non-empty, ids are unique, parent ids point at ids, and parents form no
//! cycle.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::settings::{DatasetSettings, ValidationStrategy, DEFAULT_SYSTEM_COLUMN};
use crate::table::Table;

/// Checks that every column the settings name is in the data files (training, and validation when custom),
/// reading only a CSV's header or a Parquet file's schema: the pre-flight check run before anything starts, so a
/// mistyped column is refused before a run folder exists. The same error as [`crate::prepare`] gives.
pub fn check_columns(settings: &DatasetSettings) -> Result<()> {
    let mut files = vec![settings.train_dataframe.as_path()];
    if settings.validation_strategy == ValidationStrategy::Custom {
        files.extend(settings.validation_dataframe.as_deref());
    }
    for path in files {
        let table = Table::new(path, crate::read_columns(path)?);
        resolve_columns(&table, settings)?;
    }
    Ok(())
}

/// Column indices of the settings' columns in one table.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    pub prompt: Vec<usize>,
    pub answer: usize,
    /// Classification and regression: the label or target columns.
    pub targets: Vec<usize>,
    /// Preference pairs: the rejected answer's column and, if set, its prompt's.
    pub rejected: Option<(usize, Option<usize>)>,
    pub system: Option<usize>,
    /// (parent id column, id column), when conversations are chained.
    pub chain: Option<(usize, usize)>,
}

/// Finds the settings' columns in `table`; a missing column is an error naming the file, the column, the file's
/// columns, the closest name and the setting. The default system column may be absent.
pub(crate) fn resolve_columns(table: &Table, settings: &DatasetSettings) -> Result<Columns> {
    let find = |name: &str, setting: &str| {
        table.column(name).ok_or_else(|| Error::MissingColumn {
            path: table.path.clone(),
            column: name.to_string(),
            setting: format!("dataset.{setting}"),
            columns: table.columns.clone(),
            suggestion: closest(name, &table.columns),
        })
    };
    let prompt = settings
        .prompt_column
        .iter()
        .map(|c| find(c, "prompt_column"))
        .collect::<Result<Vec<_>>>()?;
    let answer = find(&settings.answer_column, "answer_column")?;
    let targets = match &settings.targets {
        Some(t) => t
            .columns
            .iter()
            .map(|c| find(c, "answer_column"))
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let rejected = match &settings.rejected_answer_column {
        Some(name) => Some((
            find(name, "rejected_answer_column")?,
            settings
                .rejected_prompt_column
                .as_deref()
                .map(|c| find(c, "rejected_prompt_column"))
                .transpose()?,
        )),
        None => None,
    };
    let system = match &settings.system_column {
        Some(name) if name == DEFAULT_SYSTEM_COLUMN => table.column(name),
        Some(name) => Some(find(name, "system_column")?),
        None => None,
    };
    let chain = match (&settings.parent_id_column, settings.effective_id_column()) {
        (Some(parent), Some(id)) => {
            Some((find(parent, "parent_id_column")?, find(&id, "id_column")?))
        }
        _ => None,
    };
    Ok(Columns {
        prompt,
        answer,
        targets,
        rejected,
        system,
        chain,
    })
}

/// The closest of `candidates` to `name` ([`ferrotune_config::did_you_mean`]'s rule).
pub(crate) fn closest(name: &str, candidates: &[String]) -> Option<String> {
    ferrotune_config::did_you_mean(name, candidates.iter().map(String::as_str)).map(str::to_string)
}

/// Errors when every answer is empty.
pub(crate) fn check_answers(table: &Table, cols: &Columns) -> Result<()> {
    let answer_columns = std::iter::once(cols.answer).chain(cols.rejected.map(|(c, _)| c));
    for column in answer_columns {
        if (0..table.len()).all(|r| table.text(r, column).is_empty()) {
            return Err(Error::EmptyAnswers {
                path: table.path.clone(),
                column: table.columns[column].clone(),
            });
        }
    }
    if let Some((rejected, _)) = cols.rejected {
        if (0..table.len()).all(|r| table.text(r, rejected) == table.text(r, cols.answer)) {
            return Err(Error::NoPreference {
                path: table.path.clone(),
                chosen: table.columns[cols.answer].clone(),
                rejected: table.columns[rejected].clone(),
            });
        }
    }
    Ok(())
}

/// Parent ids that mean "no parent", as H2O reads them.
pub(crate) fn is_no_parent(value: &str) -> bool {
    matches!(value, "" | "None" | "none" | "nan" | "NaN" | "null")
}

/// An id as a key: trimmed, integral numbers without a fraction (`3.0` matches `3`).
pub(crate) fn id_key(value: &str) -> String {
    let trimmed = value.trim();
    match trimmed.parse::<f64>() {
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 && trimmed.contains('.') => {
            format!("{}", v as i64)
        }
        _ => trimmed.to_string(),
    }
}

/// Each row's parent row, after checking ids (unique, non-empty) and parent ids (present, acyclic).
pub(crate) fn parent_rows(
    table: &Table,
    parent_col: usize,
    id_col: usize,
) -> Result<Vec<Option<usize>>> {
    let mut by_id: HashMap<String, usize> = HashMap::with_capacity(table.len());
    for row in 0..table.len() {
        let key = id_key(table.text(row, id_col));
        if key.is_empty() {
            continue;
        }
        if let Some(&first) = by_id.get(&key) {
            return Err(Error::DuplicateId {
                path: table.path.clone(),
                column: table.columns[id_col].clone(),
                id: table.text(row, id_col).to_string(),
                first: table.origin(first).to_string(),
                second: table.origin(row).to_string(),
            });
        }
        by_id.insert(key, row);
    }
    let mut parents = Vec::with_capacity(table.len());
    for row in 0..table.len() {
        let value = table.text(row, parent_col).trim();
        if is_no_parent(value) {
            parents.push(None);
            continue;
        }
        match by_id.get(&id_key(value)) {
            Some(&p) => parents.push(Some(p)),
            None => {
                return Err(Error::MissingParent {
                    path: table.path.clone(),
                    location: table.origin(row).to_string(),
                    column: table.columns[parent_col].clone(),
                    parent: value.to_string(),
                    id_column: table.columns[id_col].clone(),
                })
            }
        }
    }
    check_acyclic(table, &parents, parent_col, id_col)?;
    Ok(parents)
}

fn check_acyclic(
    table: &Table,
    parents: &[Option<usize>],
    parent_col: usize,
    id_col: usize,
) -> Result<()> {
    // 0: unseen, 1: on the current path, 2: known to reach a root.
    let mut state = vec![0u8; parents.len()];
    let mut path = Vec::new();
    for start in 0..parents.len() {
        let mut node = Some(start);
        while let Some(n) = node {
            match state[n] {
                2 => break,
                1 => {
                    return Err(Error::ParentCycle {
                        path: table.path.clone(),
                        column: table.columns[parent_col].clone(),
                        id: table.text(n, id_col).to_string(),
                    })
                }
                _ => {
                    state[n] = 1;
                    path.push(n);
                    node = parents[n];
                }
            }
        }
        for n in path.drain(..) {
            state[n] = 2;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        let cols: Vec<String> = ["instruction", "input", "response"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            closest("Instruction", &cols).as_deref(),
            Some("instruction")
        );
        assert_eq!(closest("respons", &cols).as_deref(), Some("response"));
        assert_eq!(closest("output", &cols), None);
    }

    #[test]
    fn float_ids_match_integers() {
        assert_eq!(id_key("3.0"), "3");
        assert_eq!(id_key(" 3 "), "3");
        assert_eq!(id_key("a.b"), "a.b");
    }
}
