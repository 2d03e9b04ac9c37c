//! Dataset import: any supported file streamed into the canonical table, one [`CanonicalRow`] per turn:
//! `id`, `parent_id` (the previous turn, `None` for a conversation's first turn), `system`, `prompt`, `answer`.
//!
//! A [`Converter`] takes one or more files (each with its [`Mapping`]), recognises each file's [`Shape`], hands
//! every canonical row to a sink as it goes (nothing is held but ids, parents and word counts), and on
//! [`Converter::finish`] checks the parents (present, no cycle) and returns the [`Statistics`]. Rows without an
//! id get `r<row number>`; the turns of a ShareGPT/OpenAI conversation are chained by parent id.
//!
//! Errors name the file, the line or row and the fix: ragged CSV, non-UTF-8 text, JSON that is not an array of
//! objects, a named column that is missing (with the closest name), a file whose answers are all empty,
//! duplicate ids, missing parents and parent cycles.

mod guess;
mod messages;
mod rows;
mod shape;
pub mod stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use guess::guess_mapping;
pub use shape::Shape;
pub use stats::{Bin, ColumnCounts, EmptyCounts, Histogram, Statistics};

use crate::checks::{closest, id_key};
use crate::dataset::Format;
use crate::error::{Error, Result};
use crate::table::RowOrigin;

/// The canonical table's column names, in file order.
pub const CANONICAL_COLUMNS: [&str; 5] = ["id", "parent_id", "system", "prompt", "answer"];

/// One turn of the canonical table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanonicalRow {
    pub id: String,
    pub parent_id: Option<String>,
    pub system: String,
    pub prompt: String,
    pub answer: String,
}

/// Which columns of a file hold what. Empty fields mean "recognise it". Errors name a field as a setting,
/// `mapping.<field>` (`mapping.prompt`); a caller with its own names for them (command-line flags) adds those.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mapping {
    /// The layout; `None` recognises it from the columns.
    pub shape: Option<Shape>,
    /// Prompt columns (flat files), joined with a blank line.
    pub prompt: Vec<String>,
    /// Answer column (flat files), or the text column (plain text).
    pub answer: Option<String>,
    pub system: Option<String>,
    pub id: Option<String>,
    /// Parent id column (flat files): chains rows into conversations.
    pub parent_id: Option<String>,
}

impl Mapping {
    /// The mapping that reads a canonical table back.
    pub fn canonical() -> Mapping {
        Mapping {
            shape: Some(Shape::Flat),
            prompt: vec!["prompt".into()],
            answer: Some("answer".into()),
            system: Some("system".into()),
            id: Some("id".into()),
            parent_id: Some("parent_id".into()),
        }
    }
}

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
    words: [u32; 3],
}

/// Streams files into one canonical table; see the module docs.
#[derive(Default)]
pub struct Converter {
    files: Vec<PathBuf>,
    ids: HashMap<String, u32>,
    rows: Vec<RowInfo>,
    empty: EmptyCounts,
}

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
                None => plan.insert(shape::plan(path, columns, mapping)?),
            };
            counts.resize(columns.len(), ColumnCounts::default());
            for (k, c) in counts.iter_mut().enumerate() {
                match cells.get(k).and_then(|v| v.as_ref()) {
                    None => c.nulls += 1,
                    Some(serde_json::Value::String(s)) if s.trim().is_empty() => c.empty += 1,
                    Some(_) => c.values += 1,
                }
            }
            let mut previous: Option<String> = None;
            let turns = plan.turns(path, columns, &cells, origin)?;
            // The turns of one row are one conversation, chained in order.
            let conversation =
                matches!(plan.shape, Shape::ShareGpt | Shape::OpenAi) || turns.len() > 1;
            for turn in turns {
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
                let row = CanonicalRow {
                    id,
                    parent_id,
                    system: turn.system,
                    prompt: turn.prompt,
                    answer: turn.answer,
                };
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

    /// Each row's conversation root, after checking that every parent id names a row and that parents form no
    /// cycle.
    fn roots(&self) -> Result<Vec<usize>> {
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
        Ok(root)
    }

    /// Checks that every parent id names a row and that parents form no cycle; returns the statistics (without
    /// the per-file column counts, which the caller sums from the [`FileSummary`]s).
    pub fn finish(self) -> Result<Statistics> {
        let n = self.rows.len();
        let root = if self.rows.iter().any(|r| r.parent.is_some()) {
            self.roots()?
        } else {
            (0..n).collect()
        };
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
