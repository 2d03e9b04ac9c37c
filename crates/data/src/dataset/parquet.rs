//! Parquet through the `parquet` crate's row API (no arrow). Strings stay strings, numbers and booleans become
//! text, nulls `None`; binary columns must hold UTF-8; nested values are written out as the crate displays them.

use std::path::Path;

use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::record::Field;

use crate::error::{Error, Result};
use crate::table::{RowOrigin, Table};

/// A Parquet reader error on `path`, in our words (the library's "Parquet error: " prefix dropped).
pub(crate) fn parquet_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::CorruptParquet {
        path: path.to_path_buf(),
        message: e
            .to_string()
            .trim_start_matches("Parquet error: ")
            .to_string(),
    }
}

fn open(path: &Path) -> Result<SerializedFileReader<std::fs::File>> {
    SerializedFileReader::new(super::open(path)?).map_err(|e| parquet_error(path, e))
}

fn columns(reader: &SerializedFileReader<std::fs::File>) -> Vec<String> {
    reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect()
}

/// The top-level column names from the schema.
pub(super) fn read_schema(path: &Path) -> Result<Vec<String>> {
    Ok(columns(&open(path)?))
}

/// The whole file.
pub(super) fn read(path: &Path) -> Result<Table> {
    let reader = open(path)?;
    let mut table = Table::new(path, columns(&reader));
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| parquet_error(path, e))?;
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| parquet_error(path, e))?;
        let record = i as u64 + 1;
        let values = row
            .get_column_iter()
            .map(|(_, field)| field_text(path, record, field))
            .collect::<Result<Vec<_>>>()?;
        table.push(values, RowOrigin::Record(record));
    }
    Ok(table)
}

fn field_text(path: &Path, record: u64, field: &Field) -> Result<Option<String>> {
    Ok(Some(match field {
        Field::Null => return Ok(None),
        Field::Str(s) => s.clone(),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => s.to_string(),
            Err(_) => {
                return Err(Error::Parquet {
                    path: path.to_path_buf(),
                    message: format!("row {record} holds binary data that is not UTF-8 text"),
                })
            }
        },
        Field::Float(v) => super::float_text(f64::from(*v)),
        Field::Double(v) => super::float_text(*v),
        Field::Float16(v) => super::float_text(f64::from(*v)),
        other => other.to_string(),
    }))
}
