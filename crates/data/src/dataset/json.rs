//! JSON (one array of objects) and JSONL (one object per line). Keys keep their first-seen order; a key missing
//! from an object is `None` there.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::table::{RowOrigin, Table};

/// One JSON value where a row is expected: an object's entries in order, or what it was instead.
enum JsonRow {
    Object(Vec<(String, Value)>),
    Other(&'static str),
}

/// The top of a `.json` file: an array of rows, or what it was instead (with an object's keys that hold arrays).
enum JsonTop {
    Rows(Vec<JsonRow>),
    Object { array_keys: Vec<String> },
    Other(&'static str),
}

struct RowVisitor;

impl<'de> Visitor<'de> for RowVisitor {
    type Value = JsonRow;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<JsonRow, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            entries.push((k, v));
        }
        Ok(JsonRow::Object(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<JsonRow, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonRow::Other("an array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<JsonRow, E> {
        Ok(JsonRow::Other("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<JsonRow, E> {
        Ok(JsonRow::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<JsonRow, E> {
        Ok(JsonRow::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<JsonRow, E> {
        Ok(JsonRow::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<JsonRow, E> {
        Ok(JsonRow::Other("a number"))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<JsonRow, E> {
        Ok(JsonRow::Other("null"))
    }
}

impl<'de> Deserialize<'de> for JsonRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(RowVisitor)
    }
}

impl<'de> Deserialize<'de> for JsonTop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = JsonTop;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON array of objects")
            }

            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<JsonTop, A::Error> {
                let mut rows = Vec::new();
                while let Some(row) = seq.next_element::<JsonRow>()? {
                    rows.push(row);
                }
                Ok(JsonTop::Rows(rows))
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<JsonTop, A::Error> {
                let mut array_keys = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    if v.is_array() {
                        array_keys.push(k);
                    }
                }
                Ok(JsonTop::Object { array_keys })
            }

            fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<JsonTop, E> {
                Ok(JsonTop::Other("a string"))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<JsonTop, E> {
                Ok(JsonTop::Other("a boolean"))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<JsonTop, E> {
                Ok(JsonTop::Other("a number"))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<JsonTop, E> {
                Ok(JsonTop::Other("a number"))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<JsonTop, E> {
                Ok(JsonTop::Other("a number"))
            }

            fn visit_unit<E: de::Error>(self) -> std::result::Result<JsonTop, E> {
                Ok(JsonTop::Other("null"))
            }
        }
        d.deserialize_any(TopVisitor)
    }
}

/// Builds a table from rows, the columns being the keys in first-seen order.
#[derive(Default)]
struct Builder {
    columns: Vec<String>,
    index: HashMap<String, usize>,
    rows: Vec<(Vec<Option<String>>, RowOrigin)>,
}

impl Builder {
    fn push(&mut self, entries: Vec<(String, Value)>, origin: RowOrigin) {
        let mut row = vec![None; self.columns.len()];
        for (key, value) in entries {
            let col = match self.index.get(&key) {
                Some(&c) => c,
                None => {
                    self.columns.push(key.clone());
                    self.index.insert(key, self.columns.len() - 1);
                    row.push(None);
                    self.columns.len() - 1
                }
            };
            row[col] = value_text(value);
        }
        self.rows.push((row, origin));
    }

    fn finish(self, path: &Path) -> Table {
        let mut table = Table::new(path, self.columns);
        for (row, origin) in self.rows {
            table.push(row, origin);
        }
        table
    }
}

/// A JSON value as table text.
fn value_text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => super::float_text(f),
            _ => n.to_string(),
        }),
        other => Some(other.to_string()),
    }
}

/// A `.json` file holding one array of objects.
pub(super) fn read_array(path: &Path) -> Result<Table> {
    let text = super::read_utf8(path)?;
    let top: JsonTop = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let shape_error = |found: String, help: String| Error::JsonShape {
        path: path.to_path_buf(),
        found,
        help,
    };
    let rows = match top {
        JsonTop::Rows(rows) => rows,
        JsonTop::Object { array_keys } => {
            let help = match array_keys.first() {
                Some(key) => format!(
                    "the rows may be the array under key `{key}`: save that array alone as the file, or write one object per line to a `.jsonl` file"
                ),
                None => "write the rows as `[{...}, {...}]`, or one object per line to a `.jsonl` file".into(),
            };
            return Err(shape_error("it is one object".into(), help));
        }
        JsonTop::Other(kind) => {
            return Err(shape_error(
                format!("it is {kind}"),
                "write the rows as `[{...}, {...}]`".into(),
            ))
        }
    };
    let mut builder = Builder::default();
    for (i, row) in rows.into_iter().enumerate() {
        match row {
            JsonRow::Object(entries) => builder.push(entries, RowOrigin::Record(i as u64 + 1)),
            JsonRow::Other(kind) => {
                return Err(shape_error(
                    format!("element {} of the array is {kind}", i + 1),
                    "every element must be an object such as `{\"instruction\": \"...\", \"output\": \"...\"}`".into(),
                ))
            }
        }
    }
    Ok(builder.finish(path))
}

/// A `.jsonl` file: one object per line; blank lines are skipped.
pub(super) fn read_lines(path: &Path) -> Result<Table> {
    let text = super::read_utf8(path)?;
    let mut builder = Builder::default();
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let line_error = |message: String| Error::JsonLine {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        match serde_json::from_str::<JsonRow>(line) {
            Ok(JsonRow::Object(entries)) => builder.push(entries, RowOrigin::Line(line_no)),
            Ok(JsonRow::Other(kind)) => {
                return Err(line_error(format!("expected a JSON object, found {kind}")))
            }
            Err(e) => return Err(line_error(crate::error::json_line_problem(&e))),
        }
    }
    Ok(builder.finish(path))
}
