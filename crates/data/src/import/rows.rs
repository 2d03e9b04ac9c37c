//! Streaming readers: one row at a time, never the whole file. CSV and JSONL are read line by line, a JSON array
//! element by element (serde's sequence access over a buffered reader), Parquet row by row. Cells are JSON values
//! so nested data (ShareGPT `conversations`, OpenAI `messages`) keeps its structure; CSV cells are strings (or
//! `None` when empty) and Parquet cells are the crate's JSON rendering.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::dataset::Format;
use crate::error::{Error, Result};
use crate::table::RowOrigin;

/// Receives each row: the columns seen so far (a row never has more cells than this), the row's cells and where
/// it is in the file.
pub(crate) type RowSink<'a> =
    dyn FnMut(&[String], Vec<Option<Value>>, RowOrigin) -> Result<()> + 'a;

/// Streams the rows of `path` (format from its extension) into `sink`; returns every column seen.
pub(crate) fn stream(path: &Path, sink: &mut RowSink) -> Result<Vec<String>> {
    match Format::from_path(path)? {
        Format::Csv => stream_csv(path, sink),
        Format::Jsonl => stream_jsonl(path, sink),
        Format::Json => stream_json_array(path, sink),
        Format::Parquet => stream_parquet(path, sink),
    }
}

fn stream_csv(path: &Path, sink: &mut RowSink) -> Result<Vec<String>> {
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(crate::dataset::open(path)?);
    let columns = crate::dataset::csv::header(path, &mut rdr)?;
    let mut record = ::csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(crate::dataset::csv::convert_error(path, e)),
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let cells = record
            .iter()
            .map(|f| {
                if f.is_empty() {
                    Ok(None)
                } else {
                    crate::dataset::csv::field_text(path, line, f).map(|s| Some(Value::String(s)))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        sink(&columns, cells, RowOrigin::Line(line))?;
    }
    Ok(columns)
}

/// Keys in first-seen order.
#[derive(Default)]
struct Columns {
    names: Vec<String>,
    index: std::collections::HashMap<String, usize>,
}

impl Columns {
    fn cells(&mut self, object: Map<String, Value>) -> Vec<Option<Value>> {
        let mut cells: Vec<Option<Value>> = vec![None; self.names.len()];
        for (key, value) in object {
            let col = match self.index.get(&key) {
                Some(&c) => c,
                None => {
                    self.names.push(key.clone());
                    self.index.insert(key, self.names.len() - 1);
                    cells.push(None);
                    self.names.len() - 1
                }
            };
            cells[col] = (!value.is_null()).then_some(value);
        }
        cells
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn stream_jsonl(path: &Path, sink: &mut RowSink) -> Result<Vec<String>> {
    let mut reader = BufReader::new(crate::dataset::open(path)?);
    let mut columns = Columns::default();
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = std::str::from_utf8(&buf).map_err(|_| Error::NotUtf8 {
            path: path.to_path_buf(),
            line: Some(line_no),
        })?;
        let text = if line_no == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        if text.trim().is_empty() {
            continue;
        }
        let line_error = |message: String| Error::JsonLine {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => {
                let cells = columns.cells(object);
                sink(&columns.names, cells, RowOrigin::Line(line_no))?;
            }
            Ok(other) => {
                return Err(line_error(format!(
                    "expected a JSON object, found {}",
                    kind(&other)
                )))
            }
            Err(e) => return Err(line_error(crate::error::json_line_problem(&e))),
        }
    }
    Ok(columns.names)
}

/// Walks the top-level array, handing each object to the sink; the first sink error is kept aside (serde only
/// carries its own error type) and returned by [`stream_json_array`].
struct ArraySeed<'s, 'a> {
    sink: &'s mut RowSink<'a>,
    columns: &'s mut Columns,
    failure: &'s mut Option<Error>,
    path: &'s Path,
}

impl<'de> DeserializeSeed<'de> for ArraySeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ArraySeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut record = 0u64;
        while let Some(value) = seq.next_element::<Value>()? {
            record += 1;
            let result = match value {
                Value::Object(object) => {
                    let cells = self.columns.cells(object);
                    (self.sink)(&self.columns.names, cells, RowOrigin::Record(record))
                }
                other => Err(shape_error(
                    self.path,
                    format!("element {record} of the array is {}", kind(&other)),
                    "every element must be an object such as `{\"instruction\": \"...\", \"output\": \"...\"}`",
                )),
            };
            if let Err(e) = result {
                *self.failure = Some(e);
                return Err(de::Error::custom("stopped"));
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut array_key = None;
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            if v.is_array() && array_key.is_none() {
                array_key = Some(k);
            }
        }
        let help = match array_key {
            Some(key) => format!(
                "the rows may be the array under key `{key}`: save that array alone as the file, or write one object per line to a `.jsonl` file"
            ),
            None => "write the rows as `[{...}, {...}]`, or one object per line to a `.jsonl` file".into(),
        };
        *self.failure = Some(shape_error(self.path, "it is one object".into(), &help));
        Err(de::Error::custom("stopped"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<(), E> {
        self.other("a string")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<(), E> {
        self.other("a boolean")
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<(), E> {
        self.other("a number")
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<(), E> {
        self.other("a number")
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<(), E> {
        self.other("a number")
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        self.other("null")
    }
}

impl ArraySeed<'_, '_> {
    fn other<E: de::Error>(self, what: &str) -> std::result::Result<(), E> {
        *self.failure = Some(shape_error(
            self.path,
            format!("it is {what}"),
            "write the rows as `[{...}, {...}]`",
        ));
        Err(E::custom("stopped"))
    }
}

fn shape_error(path: &Path, found: String, help: &str) -> Error {
    Error::JsonShape {
        path: path.to_path_buf(),
        found,
        help: help.to_string(),
    }
}

fn stream_json_array(path: &Path, sink: &mut RowSink) -> Result<Vec<String>> {
    let mut reader = BufReader::new(crate::dataset::open(path)?);
    // Skip a UTF-8 byte order mark.
    let bom = reader
        .fill_buf()
        .map(|b| b.starts_with(b"\xef\xbb\xbf"))
        .unwrap_or(false);
    if bom {
        reader.consume(3);
    }
    let mut columns = Columns::default();
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let seed = ArraySeed {
        sink,
        columns: &mut columns,
        failure: &mut failure,
        path,
    };
    let result = seed.deserialize(&mut de).and_then(|()| de.end());
    if let Some(e) = failure {
        return Err(e);
    }
    result.map_err(|source| {
        if source.to_string().contains("unicode") || source.to_string().contains("UTF-8") {
            Error::NotUtf8 {
                path: path.to_path_buf(),
                line: Some(source.line() as u64),
            }
        } else {
            Error::Json {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    Ok(columns.names)
}

fn stream_parquet(path: &Path, sink: &mut RowSink) -> Result<Vec<String>> {
    use ::parquet::file::reader::{FileReader, SerializedFileReader};
    let parquet_error = |e: &dyn fmt::Display| crate::dataset::parquet::parquet_error(path, e);
    let reader =
        SerializedFileReader::new(crate::dataset::open(path)?).map_err(|e| parquet_error(&e))?;
    let columns: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let rows = reader.get_row_iter(None).map_err(|e| parquet_error(&e))?;
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| parquet_error(&e))?;
        let cells = row
            .get_column_iter()
            .map(|(_, field)| Some(field_json(field)).filter(|v| !v.is_null()))
            .collect();
        sink(&columns, cells, RowOrigin::Record(i as u64 + 1))?;
    }
    Ok(columns)
}

/// A Parquet value as JSON: strings, numbers and booleans as themselves, groups as objects, lists as arrays;
/// anything else (dates, decimals, binary) as the text the crate displays.
fn field_json(field: &::parquet::record::Field) -> Value {
    use ::parquet::record::Field;
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(v) => Value::from(*v),
        Field::Short(v) => Value::from(*v),
        Field::Int(v) => Value::from(*v),
        Field::Long(v) => Value::from(*v),
        Field::UByte(v) => Value::from(*v),
        Field::UShort(v) => Value::from(*v),
        Field::UInt(v) => Value::from(*v),
        Field::ULong(v) => Value::from(*v),
        Field::Float(v) => Value::String(crate::dataset::float_text(f64::from(*v))),
        Field::Double(v) => Value::String(crate::dataset::float_text(*v)),
        Field::Float16(v) => Value::String(crate::dataset::float_text(f64::from(*v))),
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => Value::String(field.to_string()),
        },
        Field::Group(row) => Value::Object(
            row.get_column_iter()
                .map(|(k, v)| (k.clone(), field_json(v)))
                .collect(),
        ),
        Field::ListInternal(list) => Value::Array(list.elements().iter().map(field_json).collect()),
        Field::MapInternal(map) => Value::Object(
            map.entries()
                .iter()
                .map(|(k, v)| (cell_key(k), field_json(v)))
                .collect(),
        ),
        other => Value::String(other.to_string()),
    }
}

fn cell_key(field: &::parquet::record::Field) -> String {
    match field {
        ::parquet::record::Field::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rows = Vec<Vec<Option<Value>>>;

    fn collect(path: &Path) -> Result<(Vec<String>, Rows)> {
        let mut rows = Vec::new();
        let columns = stream(path, &mut |_, cells, _| {
            rows.push(cells);
            Ok(())
        })?;
        Ok((columns, rows))
    }

    #[test]
    fn json_arrays_stream_objects_and_union_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, r#"[{"a": "x"}, {"b": [1, 2], "a": null}]"#).unwrap();
        let (columns, rows) = collect(&path).unwrap();
        assert_eq!(columns, ["a", "b"]);
        assert_eq!(rows[0], vec![Some(Value::String("x".into()))]);
        assert_eq!(rows[1], vec![None, Some(serde_json::json!([1, 2]))]);
    }

    #[test]
    fn a_json_object_names_the_array_inside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, r#"{"meta": 1, "data": [{"a": 1}]}"#).unwrap();
        let err = collect(&path).unwrap_err().to_string();
        assert!(
            err.contains("one object") && err.contains("`data`"),
            "{err}"
        );
    }

    #[test]
    fn jsonl_reports_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "{\"a\": 1}\n\n[1]\n").unwrap();
        let err = collect(&path).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("an array"), "{err}");
    }
}
