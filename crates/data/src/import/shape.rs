//! Layouts of a dataset file and how one of its rows becomes canonical turns: flat columns, Alpaca, ShareGPT,
//! OpenAI messages and plain text. A layout is recognised from the first row's columns unless the mapping names it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::messages;
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
}

impl Shape {
    /// Every layout, in the order auto-detection tries them.
    pub const ALL: [Shape; 5] = [
        Shape::OpenAi,
        Shape::ShareGpt,
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
        }
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
}

/// Which columns hold what in one file (by name; JSON objects may add columns as they go).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub shape: Shape,
    pub prompt: Vec<String>,
    /// The answer column (`output` for Alpaca, the text column for plain text).
    pub answer: Option<String>,
    pub system: Option<String>,
    pub id: Option<String>,
    pub parent_id: Option<String>,
    /// `messages` or `conversations`.
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

/// Decides the layout of `path` from its first row's `columns` and the user's mapping.
pub(crate) fn plan(path: &Path, columns: &[String], mapping: &Mapping) -> Result<Plan> {
    let flat_flags = !mapping.prompt.is_empty() || mapping.answer.is_some();
    let shape = match mapping.shape {
        Some(shape) => shape,
        None if flat_flags || mapping.parent_id.is_some() => Shape::Flat,
        None => detect(columns).ok_or_else(|| Error::UnknownLayout {
            path: path.to_path_buf(),
            columns: columns.to_vec(),
        })?,
    };
    let invalid = |message: String| {
        Error::InvalidSetting {
        setting: "mapping.shape".into(),
        message,
        help: "the prompt, answer and parent id columns are named only for the `flat` layout; drop them or the layout"
            .into(),
    }
    };
    if flat_flags && !matches!(shape, Shape::Flat | Shape::Text) {
        return Err(invalid(format!(
            "`{shape}` files have fixed columns, so the prompt and answer columns (`mapping.prompt`, `mapping.answer`) do not apply"
        )));
    }
    if mapping.parent_id.is_some() && shape != Shape::Flat {
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
    match shape {
        Shape::Flat => {
            plan.prompt = if mapping.prompt.is_empty() {
                vec![first_of(columns, &PROMPTS)
                    .ok_or_else(|| missing("prompt", "mapping.prompt"))?]
            } else {
                plan.named
                    .extend(mapping.prompt.iter().map(|p| (p.clone(), "mapping.prompt")));
                mapping.prompt.clone()
            };
            plan.answer = Some(match &mapping.answer {
                Some(a) => {
                    plan.named.push((a.clone(), "mapping.answer"));
                    a.clone()
                }
                None => first_of(columns, &ANSWERS)
                    .filter(|a| !plan.prompt.contains(a))
                    .ok_or_else(|| missing("answer", "mapping.answer"))?,
            });
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

/// The layout the columns suggest, if any.
fn detect(columns: &[String]) -> Option<Shape> {
    let has = |n: &str| find(columns, n).is_some();
    if has("messages") {
        Some(Shape::OpenAi)
    } else if has("conversations") {
        Some(Shape::ShareGpt)
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
        match self.shape {
            Shape::Flat | Shape::Alpaca | Shape::Text => {
                let prompt = self
                    .prompt
                    .iter()
                    .map(|p| text(&Some(p.clone())))
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join("\n\n");
                let parent_id = Some(text(&self.parent_id)).filter(|p| !is_no_parent(p.trim()));
                let last = Turn {
                    id,
                    parent_id,
                    system,
                    prompt,
                    answer: text(&self.answer),
                };
                let history = match cell(&self.history) {
                    None => None,
                    Some(value) => {
                        messages::list(Some(value)).map_err(|m| Error::BadConversation {
                            path: path.to_path_buf(),
                            location: origin.to_string(),
                            message: format!("column `history` {m}"),
                            help: HISTORY_HELP.into(),
                        })?
                    }
                };
                match history {
                    Some(pairs) if !pairs.is_empty() => messages::with_history(&pairs, last)
                        .map_err(|(i, message)| Error::BadConversation {
                            path: path.to_path_buf(),
                            location: origin.to_string(),
                            message: format!("entry {} of `history`: {message}", i + 1),
                            help: HISTORY_HELP.into(),
                        }),
                    _ => Ok(vec![last]),
                }
            }
            Shape::ShareGpt | Shape::OpenAi => {
                let bad = |message: String, help: &str| Error::BadConversation {
                    path: path.to_path_buf(),
                    location: origin.to_string(),
                    message,
                    help: help.to_string(),
                };
                let column = self.conversation.clone().unwrap_or_default();
                let list = messages::list(cell(&self.conversation))
                    .map_err(|m| bad(format!("column `{column}` {m}"), LIST_HELP))?
                    .ok_or_else(|| {
                        bad(
                            format!("column `{column}` is empty"),
                            "every row must hold a conversation; remove the row",
                        )
                    })?;
                messages::conversation_turns(self.shape, &list, system, id).map_err(
                    |(i, message, help)| {
                        bad(format!("message {} of `{column}`: {message}", i + 1), help)
                    },
                )
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
        assert_eq!(detect(&cols(&["messages"])), Some(Shape::OpenAi));
        assert_eq!(
            detect(&cols(&["conversations", "system"])),
            Some(Shape::ShareGpt)
        );
        assert_eq!(
            detect(&cols(&["instruction", "input", "output"])),
            Some(Shape::Alpaca)
        );
        assert_eq!(detect(&cols(&["Question", "Answer"])), Some(Shape::Flat));
        assert_eq!(detect(&cols(&["text", "url"])), Some(Shape::Text));
        assert_eq!(detect(&cols(&["a", "b"])), None);
    }

    #[test]
    fn a_missing_named_column_suggests_the_closest() {
        let mapping = Mapping {
            answer: Some("respons".into()),
            prompt: vec!["prompt".into()],
            ..Mapping::default()
        };
        let plan = plan(Path::new("x.csv"), &cols(&["prompt", "response"]), &mapping).unwrap();
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
