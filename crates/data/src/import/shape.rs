//! Layouts of a dataset file and how one of its rows becomes canonical turns: flat columns, Alpaca, ShareGPT,
//! OpenAI messages and plain text. A layout is recognised from the first row's columns unless the mapping names it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::messages::{self, Pair, Part};
use super::Mapping;
use crate::checks::{closest, is_no_parent};
use crate::error::{Error, Result};
use crate::table::RowOrigin;

/// The layout of a dataset file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// One row per turn; prompt, answer (and optionally system, id, parent id) columns.
    Flat,
    /// `instruction`, optional `input`, `output`, optional `system` and `history` (earlier [prompt, answer] pairs).
    Alpaca,
    /// A `conversations` list of `{"from": "human"|"gpt"|"system", "value": …}`; one row per conversation.
    #[serde(rename = "sharegpt")]
    ShareGpt,
    /// A `messages` list of `{"role": "system"|"user"|"assistant", "content": …}`; one row per conversation.
    #[serde(rename = "openai")]
    OpenAi,
    /// A `text` column for continued pretraining: empty prompt, the text as the answer.
    Text,
    /// LLaMA-Factory preference pairs: a `conversations` (ShareGPT) or `messages` list that ends with the user's
    /// message, and `chosen` and `rejected` answers (`{"from": "gpt", "value": …}` objects or strings).
    #[serde(rename = "llamafactory")]
    LlamaFactory,
    /// TRL preference pairs: `prompt`, `chosen`, `rejected`, each a string or a list of `{"role", "content"}`
    /// messages (the prompt holds the conversation up to the answer); without `prompt`, `chosen` and `rejected` are
    /// whole conversations whose shared start is the prompt.
    #[serde(rename = "trl")]
    Trl,
    /// Preference pairs in flat columns: prompt columns (`prompt`, or `instruction` and `input`), a chosen
    /// (`chosen`, `chosen_response`) and a rejected (`rejected`, `rejected_response`) answer column, and optionally
    /// system, id, parent id (chained rows) and Alpaca `history` columns.
    Preference,
}

impl Shape {
    /// Every layout, in the order auto-detection tries them.
    pub const ALL: [Shape; 8] = [
        Shape::LlamaFactory,
        Shape::OpenAi,
        Shape::ShareGpt,
        Shape::Trl,
        Shape::Preference,
        Shape::Alpaca,
        Shape::Flat,
        Shape::Text,
    ];

    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Flat => "flat",
            Shape::Alpaca => "alpaca",
            Shape::ShareGpt => "sharegpt",
            Shape::OpenAi => "openai",
            Shape::Text => "text",
            Shape::LlamaFactory => "llamafactory",
            Shape::Trl => "trl",
            Shape::Preference => "preference",
        }
    }

    /// Whether its rows are preference pairs (a chosen and a rejected answer).
    pub fn is_preference(self) -> bool {
        matches!(self, Shape::LlamaFactory | Shape::Trl | Shape::Preference)
    }

    /// The name in summaries: the name, or for preference pairs `preference (<source>)`.
    pub fn label(self) -> &'static str {
        match self {
            Shape::LlamaFactory => "preference (llamafactory)",
            Shape::Trl => "preference (trl)",
            Shape::Preference => "preference (flat)",
            other => other.name(),
        }
    }

    /// Every layout's name, comma-separated (for help texts).
    pub fn names() -> String {
        Shape::ALL.map(Shape::name).join(", ")
    }

    /// The layout called `name`.
    pub fn from_name(name: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

const LIST_HELP: &str = "the column must hold a JSON list of messages";
const HISTORY_HELP: &str =
    "Alpaca `history` is a list of earlier [prompt, answer] pairs, e.g. [[\"hi\", \"hello\"]]";

/// One turn read from a row, before ids are assigned.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Turn {
    pub id: Option<String>,
    pub parent_id: Option<String>,
    pub system: String,
    pub prompt: String,
    pub answer: String,
    /// Preference pairs: the rejected answer (`None` for a conversation's earlier turns and other layouts).
    pub rejected: Option<String>,
}

/// Which columns hold what in one file (by name; JSON objects may add columns as they go).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub shape: Shape,
    pub prompt: Vec<String>,
    /// The answer column (`output` for Alpaca, the text column for plain text, the chosen answer for
    /// preference pairs).
    pub answer: Option<String>,
    /// Preference pairs: the rejected answer column.
    pub rejected: Option<String>,
    pub system: Option<String>,
    pub id: Option<String>,
    pub parent_id: Option<String>,
    /// `messages` or `conversations` (also of LLaMA-Factory pairs).
    pub conversation: Option<String>,
    /// Alpaca's `history`: earlier `[prompt, answer]` pairs of the conversation.
    pub history: Option<String>,
    /// Columns the user named, with the mapping setting that named them (`mapping.prompt`): they must exist once
    /// the whole file is read.
    pub named: Vec<(String, &'static str)>,
}

const PROMPTS: [&str; 7] = [
    "prompt",
    "question",
    "instruction",
    "input",
    "query",
    "user",
    "source",
];
const ANSWERS: [&str; 7] = [
    "answer",
    "response",
    "reply",
    "output",
    "completion",
    "assistant",
    "target",
];
/// Chosen and rejected answer columns of preference pairs.
const CHOSEN: [&str; 2] = ["chosen", "chosen_response"];
const REJECTED: [&str; 2] = ["rejected", "rejected_response"];

/// The column called `name`, exactly or ignoring case.
fn find(columns: &[String], name: &str) -> Option<String> {
    columns
        .iter()
        .find(|c| *c == name)
        .or_else(|| columns.iter().find(|c| c.eq_ignore_ascii_case(name)))
        .cloned()
}

fn first_of(columns: &[String], names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| find(columns, n))
}

/// The prompt columns a flat file of preference pairs suggests: `instruction` (and `input`), or the first of the
/// usual prompt names.
fn preference_prompt(columns: &[String]) -> Option<Vec<String>> {
    match find(columns, "instruction") {
        Some(instruction) => Some(
            std::iter::once(instruction)
                .chain(find(columns, "input"))
                .collect(),
        ),
        None => first_of(columns, &PROMPTS).map(|p| vec![p]),
    }
}

/// Decides the layout of `path` from its first row (`columns`, and `first`, its cells; empty when unknown) and
/// the user's mapping.
pub(crate) fn plan(
    path: &Path,
    columns: &[String],
    first: &[Option<Value>],
    mapping: &Mapping,
) -> Result<Plan> {
    let flat_flags = !mapping.prompt.is_empty() || mapping.answer.is_some();
    let shape = match mapping.shape {
        Some(shape) => shape,
        None if mapping.rejected.is_some() => Shape::Preference,
        // Named columns are flat ones; a rejected answer column the user did not name as one of them makes pairs.
        None if flat_flags || mapping.parent_id.is_some() => match first_of(columns, &REJECTED) {
            Some(r) if !mapping.prompt.contains(&r) && mapping.answer.as_ref() != Some(&r) => {
                Shape::Preference
            }
            _ => Shape::Flat,
        },
        None => detect(columns, first).ok_or_else(|| Error::UnknownLayout {
            path: path.to_path_buf(),
            columns: columns.to_vec(),
        })?,
    };
    let invalid = |message: String| {
        Error::InvalidSetting {
        setting: "mapping.shape".into(),
        message,
        help: "the prompt, answer and parent id columns are named only for the `flat` and `preference` layouts; drop them or the layout"
            .into(),
    }
    };
    if flat_flags && !matches!(shape, Shape::Flat | Shape::Text | Shape::Preference) {
        return Err(invalid(format!(
            "`{shape}` files have fixed columns, so the prompt and answer columns (`mapping.prompt`, `mapping.answer`) do not apply"
        )));
    }
    if mapping.parent_id.is_some() && !matches!(shape, Shape::Flat | Shape::Preference) {
        return Err(invalid(format!(
            "`{shape}` files chain turns themselves, so a parent id column (`mapping.parent_id`) does not apply"
        )));
    }
    let mut named = Vec::new();
    let mut named_or =
        |given: &Option<String>, setting: &'static str, default: Option<String>| match given {
            Some(name) => {
                named.push((name.clone(), setting));
                Some(name.clone())
            }
            None => default,
        };
    let system = named_or(
        &mapping.system,
        "mapping.system",
        first_of(columns, &["system", "system_prompt"]),
    );
    let id = named_or(&mapping.id, "mapping.id", find(columns, "id"));
    let mut plan = Plan {
        shape,
        prompt: Vec::new(),
        answer: None,
        rejected: None,
        system,
        id,
        parent_id: None,
        conversation: None,
        history: None,
        named,
    };
    let missing = |column: &str, setting: &str| Error::MissingColumn {
        path: path.to_path_buf(),
        column: column.to_string(),
        setting: setting.to_string(),
        columns: columns.to_vec(),
        suggestion: closest(column, columns),
    };
    // The chosen and rejected columns of preference pairs (the chosen one may be named as the answer).
    let pair_columns = |plan: &mut Plan| -> Result<()> {
        plan.answer = Some(match &mapping.answer {
            Some(a) => {
                plan.named.push((a.clone(), "mapping.answer"));
                a.clone()
            }
            None => {
                first_of(columns, &CHOSEN).ok_or_else(|| missing("chosen", "mapping.answer"))?
            }
        });
        plan.rejected = Some(match &mapping.rejected {
            Some(r) => {
                plan.named.push((r.clone(), "mapping.rejected"));
                r.clone()
            }
            None => first_of(columns, &REJECTED)
                .filter(|r| plan.answer.as_ref() != Some(r))
                .ok_or_else(|| missing("rejected", "mapping.rejected"))?,
        });
        Ok(())
    };
    match shape {
        Shape::Flat | Shape::Preference => {
            if shape == Shape::Preference {
                pair_columns(&mut plan)?;
            }
            plan.prompt = if !mapping.prompt.is_empty() {
                plan.named
                    .extend(mapping.prompt.iter().map(|p| (p.clone(), "mapping.prompt")));
                mapping.prompt.clone()
            } else if shape == Shape::Preference {
                preference_prompt(columns).ok_or_else(|| missing("prompt", "mapping.prompt"))?
            } else {
                vec![first_of(columns, &PROMPTS)
                    .ok_or_else(|| missing("prompt", "mapping.prompt"))?]
            };
            if shape == Shape::Flat {
                plan.answer = Some(match &mapping.answer {
                    Some(a) => {
                        plan.named.push((a.clone(), "mapping.answer"));
                        a.clone()
                    }
                    None => first_of(columns, &ANSWERS)
                        .filter(|a| !plan.prompt.contains(a))
                        .ok_or_else(|| missing("answer", "mapping.answer"))?,
                });
            } else {
                plan.history = find(columns, "history");
            }
            plan.parent_id = match &mapping.parent_id {
                Some(p) => {
                    plan.named.push((p.clone(), "mapping.parent_id"));
                    if plan.id.is_none() {
                        return Err(missing("id", "mapping.id"));
                    }
                    Some(p.clone())
                }
                None => first_of(columns, &["parent_id", "parent"]).filter(|_| plan.id.is_some()),
            };
        }
        Shape::Alpaca => {
            let instruction = find(columns, "instruction")
                .ok_or_else(|| missing("instruction", "mapping.shape"))?;
            plan.prompt = vec![instruction];
            plan.prompt.extend(find(columns, "input"));
            plan.answer =
                Some(find(columns, "output").ok_or_else(|| missing("output", "mapping.shape"))?);
            plan.history = find(columns, "history");
        }
        Shape::ShareGpt => {
            plan.conversation = Some(
                find(columns, "conversations")
                    .ok_or_else(|| missing("conversations", "mapping.shape"))?,
            );
        }
        Shape::OpenAi => {
            plan.conversation = Some(
                find(columns, "messages").ok_or_else(|| missing("messages", "mapping.shape"))?,
            );
        }
        Shape::LlamaFactory => {
            plan.conversation = Some(
                first_of(columns, &["conversations", "messages"])
                    .ok_or_else(|| missing("conversations", "mapping.shape"))?,
            );
            pair_columns(&mut plan)?;
        }
        Shape::Trl => {
            pair_columns(&mut plan)?;
            // No prompt column: the prompt is the start `chosen` and `rejected` share.
            plan.prompt = first_of(columns, &PROMPTS).into_iter().collect();
        }
        Shape::Text => {
            plan.answer = Some(match &mapping.answer {
                Some(a) => {
                    plan.named.push((a.clone(), "mapping.answer"));
                    a.clone()
                }
                None => find(columns, "text").ok_or_else(|| missing("text", "mapping.answer"))?,
            });
        }
    }
    Ok(plan)
}

/// The layout the first row suggests (its `columns`; its cells `first` tell TRL's message lists from flat
/// preference columns), if any.
fn detect(columns: &[String], first: &[Option<Value>]) -> Option<Shape> {
    let has = |n: &str| find(columns, n).is_some();
    let chosen = first_of(columns, &CHOSEN);
    let rejected = first_of(columns, &REJECTED);
    let pairs = chosen.is_some() && rejected.is_some();
    if pairs && (has("conversations") || has("messages")) {
        Some(Shape::LlamaFactory)
    } else if has("messages") {
        Some(Shape::OpenAi)
    } else if has("conversations") {
        Some(Shape::ShareGpt)
    } else if pairs {
        let prompt = first_of(columns, &PROMPTS);
        let cell = |name: &Option<String>| {
            name.as_ref()
                .and_then(|n| columns.iter().position(|c| c == n))
                .and_then(|i| first.get(i))
                .and_then(|v| v.as_ref())
        };
        let lists = [&prompt, &chosen, &rejected]
            .into_iter()
            .any(|c| matches!(Part::of(cell(c), true), Part::Messages(_)));
        if prompt.is_none() || lists {
            Some(Shape::Trl)
        } else {
            Some(Shape::Preference)
        }
    } else if has("instruction") && has("output") {
        Some(Shape::Alpaca)
    } else if first_of(columns, &PROMPTS).is_some() && first_of(columns, &ANSWERS).is_some() {
        Some(Shape::Flat)
    } else if has("text") {
        Some(Shape::Text)
    } else {
        None
    }
}

/// A cell as text: strings as they are, numbers and booleans written out, nested values as JSON, null empty.
pub(crate) fn cell_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => crate::dataset::float_text(f),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

impl Plan {
    /// The turns of one row.
    pub(crate) fn turns(
        &self,
        path: &Path,
        columns: &[String],
        cells: &[Option<Value>],
        origin: RowOrigin,
    ) -> Result<Vec<Turn>> {
        let cell = |name: &Option<String>| {
            name.as_ref()
                .and_then(|n| columns.iter().position(|c| c == n))
                .and_then(|i| cells.get(i))
                .and_then(|v| v.as_ref())
        };
        let text = |name: &Option<String>| cell_text(cell(name));
        let id = Some(text(&self.id)).filter(|s| !s.trim().is_empty());
        let system = text(&self.system);
        let bad = |message: String, help: &str| Error::BadConversation {
            path: path.to_path_buf(),
            location: origin.to_string(),
            message,
            help: help.to_string(),
        };
        let prompt_text = || {
            self.prompt
                .iter()
                .map(|p| text(&Some(p.clone())))
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("\n\n")
        };
        let parent_id = Some(text(&self.parent_id)).filter(|p| !is_no_parent(p.trim()));
        // Alpaca `history`: earlier turns before the row's own.
        let with_history = |own: Vec<Turn>| -> Result<Vec<Turn>> {
            let pairs = match cell(&self.history) {
                None => None,
                Some(value) => messages::list(Some(value))
                    .map_err(|m| bad(format!("column `history` {m}"), HISTORY_HELP))?,
            };
            match pairs {
                Some(pairs) if !pairs.is_empty() => {
                    messages::with_history(&pairs, own).map_err(|(i, message)| {
                        bad(
                            format!("entry {} of `history`: {message}", i + 1),
                            HISTORY_HELP,
                        )
                    })
                }
                _ => Ok(own),
            }
        };
        // A conversation list that must be there: the whole row.
        let conversation = || -> Result<(String, Vec<Value>)> {
            let column = self.conversation.clone().unwrap_or_default();
            let list = messages::list(cell(&self.conversation))
                .map_err(|m| bad(format!("column `{column}` {m}"), LIST_HELP))?
                .ok_or_else(|| {
                    bad(
                        format!("column `{column}` is empty"),
                        "every row must hold a conversation; remove the row",
                    )
                })?;
            Ok((column, list))
        };
        match self.shape {
            Shape::Flat | Shape::Alpaca | Shape::Text => with_history(vec![Turn {
                id,
                parent_id,
                system,
                prompt: prompt_text(),
                answer: text(&self.answer),
                rejected: None,
            }]),
            Shape::ShareGpt | Shape::OpenAi => {
                let (column, list) = conversation()?;
                messages::conversation_turns(self.shape, &list, system, id).map_err(
                    |(i, message, help)| {
                        bad(format!("message {} of `{column}`: {message}", i + 1), help)
                    },
                )
            }
            Shape::LlamaFactory | Shape::Trl | Shape::Preference => {
                // TRL's lists may come as JSON text (CSV); flat columns hold text as it is.
                let parse_text = self.shape != Shape::Preference;
                let (prompt, prompt_column, messages) = if self.shape == Shape::LlamaFactory {
                    let (column, list) = conversation()?;
                    let style = if column.eq_ignore_ascii_case("messages") {
                        Shape::OpenAi
                    } else {
                        Shape::ShareGpt
                    };
                    (Some(Part::Messages(list)), column, style)
                } else {
                    let prompt = match self.prompt.as_slice() {
                        [] => None,
                        [one] => Some(Part::of(cell(&Some(one.clone())), parse_text)),
                        _ => Some(Part::Text(prompt_text())),
                    };
                    (prompt, self.prompt.join("`, `"), Shape::OpenAi)
                };
                let chosen_column = self.answer.clone().unwrap_or_default();
                let rejected_column = self.rejected.clone().unwrap_or_default();
                let pair = Pair {
                    prompt,
                    chosen: Part::of(cell(&self.answer), parse_text),
                    rejected: Part::of(cell(&self.rejected), parse_text),
                    columns: [&prompt_column, &chosen_column, &rejected_column],
                    messages,
                };
                let own = messages::pair_turns(pair, system, id).map_err(|(m, h)| bad(m, h))?;
                let mut turns = with_history(own)?;
                turns[0].parent_id = parent_id;
                Ok(turns)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn layouts_are_recognised_from_columns() {
        assert_eq!(detect(&cols(&["messages"]), &[]), Some(Shape::OpenAi));
        assert_eq!(
            detect(&cols(&["conversations", "system"]), &[]),
            Some(Shape::ShareGpt)
        );
        assert_eq!(
            detect(&cols(&["instruction", "input", "output"]), &[]),
            Some(Shape::Alpaca)
        );
        assert_eq!(
            detect(&cols(&["Question", "Answer"]), &[]),
            Some(Shape::Flat)
        );
        assert_eq!(detect(&cols(&["text", "url"]), &[]), Some(Shape::Text));
        assert_eq!(detect(&cols(&["a", "b"]), &[]), None);
    }

    #[test]
    fn preference_layouts_are_recognised_from_columns_and_the_first_row() {
        use serde_json::json;
        let pair = cols(&["conversations", "chosen", "rejected"]);
        assert_eq!(detect(&pair, &[]), Some(Shape::LlamaFactory));
        let pair = cols(&["messages", "chosen", "rejected"]);
        assert_eq!(detect(&pair, &[]), Some(Shape::LlamaFactory));
        // TRL: message lists (also as JSON text), or no prompt column at all.
        let trl = cols(&["prompt", "chosen", "rejected"]);
        let list = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(
            detect(&trl, &[Some(list.clone()), None, None]),
            Some(Shape::Trl)
        );
        assert_eq!(
            detect(&trl, &[Some(json!(list.to_string())), None, None]),
            Some(Shape::Trl)
        );
        assert_eq!(
            detect(&cols(&["chosen", "rejected"]), &[]),
            Some(Shape::Trl)
        );
        // Text in flat columns.
        let text = [Some(json!("q")), Some(json!("a")), Some(json!("b"))];
        assert_eq!(detect(&trl, &text), Some(Shape::Preference));
        let flat = cols(&[
            "instruction",
            "input",
            "chosen_response",
            "rejected_response",
        ]);
        assert_eq!(detect(&flat, &[]), Some(Shape::Preference));
        let plan = plan(Path::new("x.csv"), &flat, &[], &Mapping::default()).unwrap();
        assert_eq!(plan.prompt, ["instruction", "input"]);
        assert_eq!(
            (plan.answer.as_deref(), plan.rejected.as_deref()),
            (Some("chosen_response"), Some("rejected_response"))
        );
        // One answer column without the other is no pair.
        assert_eq!(
            detect(&cols(&["instruction", "output", "rejected"]), &[]),
            Some(Shape::Alpaca)
        );
        assert_eq!(Shape::LlamaFactory.label(), "preference (llamafactory)");
        assert!(Shape::ALL
            .iter()
            .all(|s| Shape::from_name(s.name()) == Some(*s)));
    }

    #[test]
    fn named_columns_beside_a_rejected_column_are_pairs() {
        let columns = cols(&["q", "good", "rejected", "mid", "prev"]);
        let mapping = Mapping {
            prompt: vec!["q".into()],
            answer: Some("good".into()),
            id: Some("mid".into()),
            parent_id: Some("prev".into()),
            ..Mapping::default()
        };
        let plan = plan(Path::new("x.csv"), &columns, &[], &mapping).unwrap();
        assert_eq!(plan.shape, Shape::Preference);
        assert_eq!(plan.rejected.as_deref(), Some("rejected"));
        assert_eq!(plan.parent_id.as_deref(), Some("prev"));
        // Without a rejected column they stay flat; fixed layouts refuse named columns.
        let plan = super::plan(Path::new("x.csv"), &cols(&["q", "good"]), &[], &mapping);
        assert_eq!(plan.unwrap().shape, Shape::Flat);
        let trl = Mapping {
            shape: Some(Shape::Trl),
            ..mapping
        };
        let err = super::plan(Path::new("x.csv"), &columns, &[], &trl)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`trl` files have fixed columns"), "{err}");
    }

    #[test]
    fn a_missing_named_column_suggests_the_closest() {
        let mapping = Mapping {
            answer: Some("respons".into()),
            prompt: vec!["prompt".into()],
            ..Mapping::default()
        };
        let plan = plan(
            Path::new("x.csv"),
            &cols(&["prompt", "response"]),
            &[],
            &mapping,
        )
        .unwrap();
        assert_eq!(plan.named.len(), 2);
        let err =
            super::super::check_named(Path::new("x.csv"), &plan, &cols(&["prompt", "response"]))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("`respons`") && err.contains("did you mean `response`"),
            "{err}"
        );
    }
}
