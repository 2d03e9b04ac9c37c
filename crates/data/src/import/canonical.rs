//! The canonical table's rows and column names, and the [`Mapping`] that says which columns of a file hold what.

use serde::{Deserialize, Serialize};

use super::Shape;

/// The canonical table's column names, in file order.
pub const CANONICAL_COLUMNS: [&str; 5] = ["id", "parent_id", "system", "prompt", "answer"];
/// The column names of a canonical table of preference pairs, in file order.
pub const PREFERENCE_COLUMNS: [&str; 6] = [
    "id",
    "parent_id",
    "system",
    "prompt",
    "chosen_response",
    "rejected_response",
];

/// One turn of the canonical table. As JSON (the studio's API) it is `{id, parent_id, system, prompt, answer}`,
/// plus `rejected_response` in a table of preference pairs; [`CanonicalRow::record`] is its line in the table
/// file. Either form reads back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanonicalRow {
    pub id: String,
    pub parent_id: Option<String>,
    pub system: String,
    pub prompt: String,
    /// The answer; for preference pairs the chosen one.
    #[serde(alias = "chosen_response")]
    pub answer: String,
    /// Preference pairs: the rejected answer (empty for a conversation's earlier turns); `None` in other tables.
    #[serde(
        default,
        rename = "rejected_response",
        skip_serializing_if = "Option::is_none"
    )]
    pub rejected: Option<String>,
}

impl CanonicalRow {
    /// The row as a line of the table file: [`CANONICAL_COLUMNS`], or [`PREFERENCE_COLUMNS`] for pairs.
    pub fn record(&self) -> Record<'_> {
        Record(self)
    }
}

/// A [`CanonicalRow`] serialised with the table file's column names.
pub struct Record<'a>(&'a CanonicalRow);

impl Serialize for Record<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let row = self.0;
        let mut s =
            serializer.serialize_struct("Record", if row.rejected.is_some() { 6 } else { 5 })?;
        s.serialize_field("id", &row.id)?;
        s.serialize_field("parent_id", &row.parent_id)?;
        s.serialize_field("system", &row.system)?;
        s.serialize_field("prompt", &row.prompt)?;
        match &row.rejected {
            None => s.serialize_field("answer", &row.answer)?,
            Some(rejected) => {
                s.serialize_field("chosen_response", &row.answer)?;
                s.serialize_field("rejected_response", rejected)?;
            }
        }
        s.end()
    }
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
    /// Rejected answer column (preference pairs; `answer` is then the chosen one); naming it makes the file pairs.
    pub rejected: Option<String>,
}

impl Mapping {
    /// The mapping that reads a canonical table of preference pairs back.
    pub fn canonical_preference() -> Mapping {
        Mapping {
            shape: Some(Shape::Preference),
            answer: Some(PREFERENCE_COLUMNS[4].into()),
            rejected: Some(PREFERENCE_COLUMNS[5].into()),
            ..Mapping::canonical()
        }
    }

    /// The mapping that reads a canonical table back.
    pub fn canonical() -> Mapping {
        Mapping {
            shape: Some(Shape::Flat),
            prompt: vec!["prompt".into()],
            answer: Some("answer".into()),
            system: Some("system".into()),
            id: Some("id".into()),
            parent_id: Some("parent_id".into()),
            rejected: None,
        }
    }
}
