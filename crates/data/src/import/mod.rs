//! Dataset import: any supported file streamed into the canonical table, one [`CanonicalRow`] per turn:
//! `id`, `parent_id` (the previous turn, `None` for a conversation's first turn), `system`, `prompt`, `answer`.
//! A table of preference pairs ([`Shape::is_preference`]) has `chosen_response` and `rejected_response` instead of
//! `answer` ([`PREFERENCE_COLUMNS`]): the DPO settings' default column names. Its earlier turns of a conversation
//! are history, with an empty rejected answer; the conversation's last turn holds the pair. A table holds either
//! kind of row, never both.
//!
//! A [`Converter`] takes one or more files (each with its [`Mapping`]), recognises each file's [`Shape`], hands
//! every canonical row to a sink as it goes (nothing is held but ids, parents and word counts), and on
//! [`Converter::finish`] checks the parents (present, no cycle) and returns the [`Statistics`]. Rows without an
//! id get `r<row number>`; the turns of a ShareGPT/OpenAI conversation are chained by parent id.
//!
//! Errors name the file, the line or row and the fix: ragged CSV, non-UTF-8 text, JSON that is not an array of
//! objects, a named column that is missing (with the closest name), a file whose answers are all empty,
//! duplicate ids, missing parents and parent cycles; for preference pairs, a pair whose chosen or rejected answer
//! is empty and TRL conversations whose chosen and rejected share no prompt.

mod canonical;
mod guess;
mod messages;
mod rows;
mod shape;
pub mod stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use canonical::{CanonicalRow, Mapping, Record, CANONICAL_COLUMNS, PREFERENCE_COLUMNS};
pub use guess::guess_mapping;
pub use shape::Shape;
pub use stats::{Bin, ColumnCounts, EmptyCounts, Histogram, PreferenceStatistics, Statistics};

use crate::checks::{closest, id_key};
use crate::dataset::Format;
use crate::error::{Error, Result};
use crate::table::RowOrigin;

/// What one imported file held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSummary {
    pub path: PathBuf,
    pub format: String,
    pub shape: Shape,
    /// Rows (records) of the file.
    pub records: u64,
    /// Canonical rows made from them.
    pub rows: u64,
    /// Every column of the file, with its null/empty counts.
    pub columns: Vec<(String, ColumnCounts)>,
}

/// Bookkeeping per canonical row.
struct RowInfo {
    /// The id is `r<index>`, made here.
    generated: bool,
    file: u32,
    origin: RowOrigin,
    parent: Option<String>,
    /// Words of the system, prompt and answer (the chosen one of pairs).
    words: [u32; 3],
    /// Preference pairs: words of the rejected answer, and whether it equals the chosen one.
    rejected_words: u32,
    identical: bool,
}

/// Streams files into one canonical table; see the module docs.
#[derive(Default)]
pub struct Converter {
    files: Vec<PathBuf>,
    ids: HashMap<String, u32>,
    rows: Vec<RowInfo>,
    empty: EmptyCounts,
    /// Whether the table holds preference pairs (decided by its first file).
    preference: Option<bool>,
    /// Rows of chained flat pairs with an empty chosen or rejected answer (and that column): an error unless the
    /// row turns out to be an earlier turn of its conversation.
    empty_pairs: Vec<(usize, String)>,
}

const PAIR_HELP: &str =
    "every preference pair needs a chosen and a rejected answer; fill it in or remove the row";

impl Converter {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Canonical rows so far.
    pub fn rows(&self) -> u64 {
        self.rows.len() as u64
    }

    /// Converts the file at `path`, handing each canonical row to `sink`. After an error the table is
    /// incomplete: drop the converter (and what the sink wrote).
    pub fn add_file(
        &mut self,
        path: &Path,
        mapping: &Mapping,
        sink: &mut dyn FnMut(&CanonicalRow) -> Result<()>,
    ) -> Result<FileSummary> {
        let format = Format::from_path(path)?;
        let file = self.files.len() as u32;
        self.files.push(path.to_path_buf());
        let mut plan: Option<shape::Plan> = None;
        let mut counts: Vec<ColumnCounts> = Vec::new();
        let (mut records, first_row) = (0u64, self.rows.len());
        let mut any_answer = false;
        let columns = rows::stream(path, &mut |columns, cells, origin| {
            records += 1;
            let plan = match &mut plan {
                Some(p) => p,
                None => {
                    let p = shape::plan(path, columns, &cells, mapping)?;
                    let pairs = p.shape.is_preference();
                    if self.preference.is_some_and(|table| table != pairs) {
                        let (this, other) = if pairs {
                            ("preference pairs", "single answers")
                        } else {
                            (
                                "single answers",
                                "preference pairs (chosen and rejected answers)",
                            )
                        };
                        return Err(Error::BadConversation {
                            path: path.to_path_buf(),
                            location: origin.to_string(),
                            message: format!(
                                "the file holds {this}, but the dataset's other files hold {other}"
                            ),
                            help: "import preference pairs and single answers as separate datasets"
                                .into(),
                        });
                    }
                    self.preference = Some(pairs);
                    // Named columns are checked before any row is read by them.
                    check_named(path, &p, columns)?;
                    plan.insert(p)
                }
            };
            counts.resize(columns.len(), ColumnCounts::default());
            for (k, c) in counts.iter_mut().enumerate() {
                match cells.get(k).and_then(|v| v.as_ref()) {
                    None => c.nulls += 1,
                    Some(serde_json::Value::String(s)) if s.trim().is_empty() => c.empty += 1,
                    Some(_) => c.values += 1,
                }
            }
            let turns = plan.turns(path, columns, &cells, origin)?;
            // The turns of one row are one conversation, chained in order (after the row's parent, if any).
            let conversation = matches!(
                plan.shape,
                Shape::ShareGpt | Shape::OpenAi | Shape::LlamaFactory | Shape::Trl
            ) || turns.len() > 1;
            let mut previous: Option<String> = turns
                .first()
                .and_then(|t| t.parent_id.as_deref())
                .filter(|_| conversation)
                .map(id_key);
            let last = turns.len().saturating_sub(1);
            for (k, turn) in turns.into_iter().enumerate() {
                let index = self.rows.len();
                let given = turn.id.map(|i| id_key(&i));
                let generated = given.is_none();
                let id = given.unwrap_or_else(|| format!("r{index}"));
                let parent_id = if conversation {
                    previous.replace(id.clone())
                } else {
                    turn.parent_id.map(|p| id_key(&p))
                };
                if let Some(first) = self.row_of(&id) {
                    return Err(Error::DuplicateId {
                        path: path.to_path_buf(),
                        column: plan.id.clone().unwrap_or_else(|| "id".into()),
                        id,
                        first: self.locate(first),
                        second: origin.to_string(),
                    });
                }
                let index32 = u32::try_from(index).map_err(|_| Error::InvalidSetting {
                    setting: "dataset".into(),
                    message: format!("more than {} rows", u32::MAX),
                    help: "split the dataset into several".into(),
                })?;
                // Generated ids are found by their number; only given ids take memory.
                if !generated {
                    self.ids.insert(id.clone(), index32);
                }
                let pairs = plan.shape.is_preference();
                let row = CanonicalRow {
                    id,
                    parent_id,
                    system: turn.system,
                    prompt: turn.prompt,
                    answer: turn.answer,
                    rejected: pairs.then(|| turn.rejected.unwrap_or_default()),
                };
                // The row's last turn holds its pair; a chained flat row may turn out to be an earlier turn.
                if pairs && k == last {
                    let chosen = (&row.answer, &plan.answer);
                    let rejected = (row.rejected.as_deref().unwrap_or(""), &plan.rejected);
                    for (text, column) in [(chosen.0.as_str(), chosen.1), rejected] {
                        if !text.trim().is_empty() {
                            continue;
                        }
                        let column = column.clone().unwrap_or_default();
                        if plan.parent_id.is_some() {
                            self.empty_pairs.push((index, column));
                        } else {
                            return Err(Error::BadConversation {
                                path: path.to_path_buf(),
                                location: origin.to_string(),
                                message: format!("column `{column}` is empty"),
                                help: PAIR_HELP.into(),
                            });
                        }
                    }
                }
                any_answer |= !row.answer.trim().is_empty();
                self.empty.system += u64::from(row.system.is_empty());
                self.empty.prompt += u64::from(row.prompt.is_empty());
                self.empty.answer += u64::from(row.answer.trim().is_empty());
                self.rows.push(RowInfo {
                    generated,
                    file,
                    origin,
                    parent: row.parent_id.clone(),
                    words: [
                        stats::words(&row.system),
                        stats::words(&row.prompt),
                        stats::words(&row.answer),
                    ],
                    rejected_words: row.rejected.as_deref().map_or(0, stats::words),
                    identical: row.rejected.as_ref() == Some(&row.answer),
                });
                sink(&row)?;
            }
            Ok(())
        })?;
        let Some(plan) = plan else {
            return Err(Error::EmptyDataset {
                path: path.to_path_buf(),
                help: "the file holds no rows; check that it is the right file".into(),
            });
        };
        check_named(path, &plan, &columns)?;
        if !any_answer {
            return Err(Error::NoAnswers {
                path: path.to_path_buf(),
                column: plan
                    .answer
                    .clone()
                    .or(plan.conversation.clone())
                    .unwrap_or_default(),
            });
        }
        counts.resize(columns.len(), ColumnCounts::default());
        // Rows shorter than the final column list (JSON objects without a later key) count as nulls there.
        for c in counts.iter_mut() {
            c.nulls = records - c.values - c.empty;
        }
        Ok(FileSummary {
            path: path.to_path_buf(),
            format: format!("{format:?}").to_lowercase(),
            shape: plan.shape,
            records,
            rows: (self.rows.len() - first_row) as u64,
            columns: columns.into_iter().zip(counts).collect(),
        })
    }

    /// The row with id `id`: a given id, or a generated `r<index>`.
    fn row_of(&self, id: &str) -> Option<usize> {
        if let Some(&row) = self.ids.get(id) {
            return Some(row as usize);
        }
        let index: usize = id.strip_prefix('r')?.parse().ok()?;
        (self.rows.get(index)?.generated && format!("r{index}") == id).then_some(index)
    }

    /// The id of row `index`.
    fn id_of(&self, index: usize) -> String {
        if self.rows[index].generated {
            return format!("r{index}");
        }
        self.ids
            .iter()
            .find(|(_, &r)| r as usize == index)
            .map(|(id, _)| id.clone())
            .unwrap_or_default()
    }

    /// `file`, line/row of canonical row `index`, for messages.
    fn locate(&self, index: usize) -> String {
        let info = &self.rows[index];
        format!(
            "`{}` {}",
            self.files[info.file as usize].display(),
            info.origin
        )
    }

    /// Each row's conversation root and whether it is some row's parent, after checking that every parent id
    /// names a row and that parents form no cycle.
    fn roots(&self) -> Result<(Vec<usize>, Vec<bool>)> {
        let n = self.rows.len();
        let mut parent: Vec<Option<usize>> = Vec::with_capacity(n);
        for info in &self.rows {
            parent.push(match &info.parent {
                None => None,
                Some(p) => match self.row_of(p) {
                    Some(row) => Some(row),
                    None => {
                        return Err(Error::MissingParent {
                            path: self.files[info.file as usize].clone(),
                            location: info.origin.to_string(),
                            column: "parent_id".into(),
                            parent: p.clone(),
                            id_column: "id".into(),
                        })
                    }
                },
            });
        }
        let mut is_parent = vec![false; n];
        for p in parent.iter().flatten() {
            is_parent[*p] = true;
        }
        // The conversation root of each row; 0: unseen, 1: on the current path, 2: done.
        let mut root = vec![usize::MAX; n];
        let mut state = vec![0u8; n];
        let mut path = Vec::new();
        for start in 0..n {
            let mut node = start;
            let found = loop {
                match state[node] {
                    2 => break root[node],
                    1 => {
                        let info = &self.rows[node];
                        let id = self.id_of(node);
                        return Err(Error::ParentCycle {
                            path: self.files[info.file as usize].clone(),
                            column: "parent_id".into(),
                            id,
                        });
                    }
                    _ => {
                        state[node] = 1;
                        path.push(node);
                        match parent[node] {
                            Some(p) => node = p,
                            None => break node,
                        }
                    }
                }
            };
            for k in path.drain(..) {
                state[k] = 2;
                root[k] = found;
            }
        }
        Ok((root, is_parent))
    }

    /// Checks that every parent id names a row and that parents form no cycle; returns the statistics (without
    /// the per-file column counts, which the caller sums from the [`FileSummary`]s).
    pub fn finish(self) -> Result<Statistics> {
        let n = self.rows.len();
        let (root, is_parent) = if self.rows.iter().any(|r| r.parent.is_some()) {
            self.roots()?
        } else {
            ((0..n).collect(), vec![false; n])
        };
        // A pair is a conversation's last turn; earlier turns are its history and need no rejected answer.
        if let Some((row, column)) = self.empty_pairs.iter().find(|(row, _)| !is_parent[*row]) {
            let info = &self.rows[*row];
            return Err(Error::BadConversation {
                path: self.files[info.file as usize].clone(),
                location: info.origin.to_string(),
                message: format!("column `{column}` is empty"),
                help: PAIR_HELP.into(),
            });
        }
        // Turns and words per conversation, indexed by the root row.
        let mut turns = vec![0u32; n];
        let mut words = vec![0u32; n];
        for (k, info) in self.rows.iter().enumerate() {
            turns[root[k]] += 1;
            words[root[k]] = words[root[k]].saturating_add(info.words.iter().sum::<u32>());
        }
        drop(root);
        let mut stats = Statistics {
            rows: n as u64,
            empty: self.empty.clone(),
            ..Statistics::default()
        };
        let mut conversation_words = Vec::new();
        for (&count, &w) in turns.iter().zip(&words).filter(|(&c, _)| c > 0) {
            *stats
                .turns_per_conversation
                .entry(u64::from(count))
                .or_default() += 1;
            conversation_words.push(w);
        }
        drop((turns, words));
        stats.conversations = conversation_words.len() as u64;
        let side = |k: usize| self.rows.iter().map(|r| r.words[k]).collect::<Vec<_>>();
        stats.prompt_words = Histogram::of(&mut side(1));
        stats.answer_words = Histogram::of(&mut side(2));
        stats.conversation_words = Histogram::of(&mut conversation_words);
        if self.preference == Some(true) {
            let pairs: Vec<&RowInfo> = self
                .rows
                .iter()
                .zip(&is_parent)
                .filter(|(_, &parent)| !parent)
                .map(|(info, _)| info)
                .collect();
            stats.preference = Some(PreferenceStatistics {
                rows: pairs.len() as u64,
                identical: pairs.iter().filter(|r| r.identical).count() as u64,
                chosen_words: Histogram::of(
                    &mut pairs.iter().map(|r| r.words[2]).collect::<Vec<_>>(),
                ),
                rejected_words: Histogram::of(
                    &mut pairs.iter().map(|r| r.rejected_words).collect::<Vec<_>>(),
                ),
            });
        }
        Ok(stats)
    }
}

/// Every column the user named exists in the file (errors suggest the closest name).
fn check_named(path: &Path, plan: &shape::Plan, columns: &[String]) -> Result<()> {
    for (name, setting) in &plan.named {
        if !columns.contains(name) {
            return Err(Error::MissingColumn {
                path: path.to_path_buf(),
                column: name.clone(),
                setting: setting.to_string(),
                columns: columns.to_vec(),
                suggestion: closest(name, columns),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(
        name: &str,
        text: &str,
        mapping: &Mapping,
    ) -> Result<(Vec<CanonicalRow>, Statistics)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let mut conv = Converter::new();
        let mut rows = Vec::new();
        conv.add_file(&path, mapping, &mut |r| {
            rows.push(r.clone());
            Ok(())
        })?;
        Ok((rows, conv.finish()?))
    }

    #[test]
    fn chained_flat_rows_keep_their_ids_and_count_conversations() {
        let csv = "id,parent_id,question,answer\n1,,hi there,hello\n2,1,how are you,fine thanks\n3,,q,a\n";
        let (rows, stats) = convert("c.csv", csv, &Mapping::default()).unwrap();
        assert_eq!(rows[1].parent_id.as_deref(), Some("1"));
        assert_eq!(rows[1].prompt, "how are you");
        assert_eq!((stats.rows, stats.conversations), (3, 2));
        assert_eq!(stats.turns_per_conversation.get(&2), Some(&1));
        assert_eq!(stats.turns_per_conversation.get(&1), Some(&1));
        // "hi there hello how are you fine thanks" is 8 words.
        assert_eq!(stats.conversation_words.max, 8);
    }

    #[test]
    fn given_ids_meet_generated_ones() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a.csv");
        std::fs::write(&first, "prompt,answer\nq0,a0\nq1,a1\n").unwrap();
        let chained = dir.path().join("b.csv");
        std::fs::write(&chained, "id,parent_id,prompt,answer\nx,r1,q,a\n").unwrap();
        let clash = dir.path().join("c.csv");
        std::fs::write(&clash, "id,prompt,answer\nr0,q,a\n").unwrap();
        let mut sink = |_: &CanonicalRow| Ok(());
        let mut conv = Converter::new();
        conv.add_file(&first, &Mapping::default(), &mut sink)
            .unwrap();
        conv.add_file(&chained, &Mapping::default(), &mut sink)
            .unwrap();
        // `x` continues the generated row `r1`: two conversations, one of two turns.
        let stats = conv.finish().unwrap();
        assert_eq!(stats.conversations, 2);
        assert_eq!(stats.turns_per_conversation.get(&2), Some(&1));

        let mut conv = Converter::new();
        conv.add_file(&first, &Mapping::default(), &mut sink)
            .unwrap();
        let err = conv
            .add_file(&clash, &Mapping::default(), &mut sink)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`r0` twice") && err.contains("a.csv` line 2"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_ids_name_both_rows() {
        let csv = "id,prompt,answer\n1,a,b\n1,c,d\n";
        let err = convert("d.csv", csv, &Mapping::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`1` twice") && err.contains("line 2") && err.contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn parent_cycles_and_missing_parents_are_errors() {
        let csv = "id,parent_id,prompt,answer\n1,2,a,b\n2,1,c,d\n";
        let err = convert("c.csv", csv, &Mapping::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cycle"), "{err}");
        let csv = "id,parent_id,prompt,answer\n1,9,a,b\n";
        let err = convert("m.csv", csv, &Mapping::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`9`") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn all_empty_answers_are_an_error() {
        let err = convert(
            "e.jsonl",
            "{\"prompt\": \"a\", \"answer\": \"\"}\n",
            &Mapping::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("every answer") && err.contains("`mapping.answer`"),
            "{err}"
        );
    }

    #[test]
    fn pairs_get_chosen_and_rejected_columns_and_statistics() {
        let jsonl = concat!(
            r#"{"id": "a", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}, {"from": "human", "value": "bye"}], "chosen": {"from": "gpt", "value": "ciao now"}, "rejected": "go"}"#,
            "\n",
            r#"{"conversations": [{"from": "human", "value": "q"}], "chosen": "same", "rejected": "same"}"#,
            "\n",
        );
        let (rows, stats) = convert("lf.jsonl", jsonl, &Mapping::default()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[0].id.as_str(), rows[0].rejected.as_deref()),
            ("a", Some(""))
        );
        assert_eq!(rows[1].parent_id.as_deref(), Some("a"));
        assert_eq!(
            (rows[1].answer.as_str(), rows[1].rejected.as_deref()),
            ("ciao now", Some("go"))
        );
        let pairs = stats.preference.unwrap();
        assert_eq!((pairs.rows, pairs.identical), (2, 1));
        assert_eq!((pairs.chosen_words.max, pairs.rejected_words.max), (2, 1));
        // The file line uses the DPO column names and reads back.
        let line = serde_json::to_string(&rows[1].record()).unwrap();
        let at: Vec<usize> = PREFERENCE_COLUMNS
            .iter()
            .map(|c| line.find(&format!("\"{c}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
        let back: CanonicalRow = serde_json::from_str(&line).unwrap();
        assert_eq!(back, rows[1]);
        // Single answers keep their columns, with no rejected one.
        let (rows, stats) = convert("f.csv", "prompt,answer\nq,a\n", &Mapping::default()).unwrap();
        let line = serde_json::to_value(rows[0].record()).unwrap();
        assert_eq!(line.as_object().unwrap().len(), CANONICAL_COLUMNS.len());
        assert_eq!(serde_json::to_value(&rows[0]).unwrap(), line);
        assert!(stats.preference.is_none());
    }

    #[test]
    fn an_empty_answer_of_a_pair_names_the_row_and_column() {
        let csv = "prompt,chosen,rejected\nq,a,b\nq2,a2,\n";
        let err = convert("p.csv", csv, &Mapping::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.csv`, line 3: column `rejected` is empty") && err.contains("help:"),
            "{err}"
        );
        let json = r#"[{"conversations": [{"from": "human", "value": "q"}], "chosen": "a", "rejected": "b"},
                       {"conversations": [{"from": "human", "value": "q"}], "chosen": null, "rejected": "no"}]"#;
        let err = convert("p.json", json, &Mapping::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 2: column `chosen` is empty"), "{err}");
        // Chained flat rows: an earlier turn needs no rejected answer, the last one does.
        let chained = "id,parent_id,prompt,chosen,rejected\n1,,hi,hello,\n2,1,more,sure,nope\n";
        let (rows, stats) = convert("c.csv", chained, &Mapping::default()).unwrap();
        assert_eq!(rows[1].parent_id.as_deref(), Some("1"));
        assert_eq!(stats.preference.unwrap().rows, 1);
        let open_end = "id,parent_id,prompt,chosen,rejected\n1,,hi,hello,no\n2,1,more,sure,\n";
        let err = convert("c.csv", open_end, &Mapping::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3: column `rejected` is empty"), "{err}");
    }

    #[test]
    fn pairs_and_single_answers_do_not_mix() {
        let dir = tempfile::tempdir().unwrap();
        let pairs = dir.path().join("p.csv");
        std::fs::write(&pairs, "prompt,chosen,rejected\nq,a,b\n").unwrap();
        let single = dir.path().join("s.csv");
        std::fs::write(&single, "prompt,answer\nq,a\n").unwrap();
        let mut sink = |_: &CanonicalRow| Ok(());
        let mut conv = Converter::new();
        conv.add_file(&pairs, &Mapping::default(), &mut sink)
            .unwrap();
        let err = conv
            .add_file(&single, &Mapping::default(), &mut sink)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.csv`, line 2: the file holds single answers")
                && err.contains("separate datasets"),
            "{err}"
        );
    }

    #[test]
    fn plain_text_becomes_answers_with_empty_prompts() {
        let (rows, stats) = convert(
            "t.jsonl",
            "{\"text\": \"one two three\"}\n",
            &Mapping::default(),
        )
        .unwrap();
        assert_eq!(
            (rows[0].prompt.as_str(), rows[0].answer.as_str()),
            ("", "one two three")
        );
        assert_eq!(stats.empty.prompt, 1);
        assert_eq!(stats.answer_words.max, 3);
    }
}
