//! CSV with a header row (the `csv` crate): every row must have the header's field count; empty fields are `None`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::table::{RowOrigin, Table};

fn reader(path: &Path) -> Result<::csv::Reader<std::fs::File>> {
    Ok(::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(super::open(path)?))
}

pub(crate) fn convert_error(path: &Path, e: ::csv::Error) -> Error {
    let line = e.position().map(|p| p.line());
    match e.kind() {
        ::csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => {
            let record_line = pos.as_ref().map(|p| p.line()).or(line).unwrap_or(0);
            if let Some(start) = pos.as_ref().map(|p| p.byte()) {
                if quotes_unbalanced_from(path, start) {
                    return Error::UnclosedQuote {
                        path: path.to_path_buf(),
                        line: record_line,
                    };
                }
            }
            return Error::RaggedCsv {
                path: path.to_path_buf(),
                line: record_line,
                expected: *expected_len as usize,
                found: *len as usize,
            };
        }
        ::csv::ErrorKind::Utf8 { pos, .. } => {
            return Error::NotUtf8 {
                path: path.to_path_buf(),
                line: pos.as_ref().map(|p| p.line()).or(line),
            }
        }
        _ => {}
    }
    let message = e.to_string();
    match e.into_kind() {
        ::csv::ErrorKind::Io(source) => Error::Io {
            path: path.to_path_buf(),
            source,
        },
        _ => Error::Csv {
            path: path.to_path_buf(),
            line,
            message,
        },
    }
}

/// Whether the file holds an odd number of `"` from byte `start` to its end: a record whose field count is
/// wrong because a quote opened in it was never closed (the reader then takes the rest of the file as one field).
fn quotes_unbalanced_from(path: &Path, start: u64) -> bool {
    use std::io::{BufRead, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    if file.seek(SeekFrom::Start(start)).is_err() {
        return false;
    }
    let mut reader = std::io::BufReader::new(file);
    let mut quotes = 0u64;
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        quotes += chunk.iter().filter(|&&b| b == b'"').count() as u64;
        let n = chunk.len();
        reader.consume(n);
    }
    quotes % 2 == 1
}

pub(crate) fn field_text(path: &Path, line: u64, field: &[u8]) -> Result<String> {
    std::str::from_utf8(field)
        .map(str::to_string)
        .map_err(|_| Error::NotUtf8 {
            path: path.to_path_buf(),
            line: Some(line),
        })
}

pub(crate) fn header(path: &Path, rdr: &mut ::csv::Reader<std::fs::File>) -> Result<Vec<String>> {
    let headers = rdr
        .byte_headers()
        .map_err(|e| convert_error(path, e))?
        .clone();
    let mut names = headers
        .iter()
        .map(|f| field_text(path, 1, f))
        .collect::<Result<Vec<_>>>()?;
    if let Some(first) = names.first_mut() {
        if let Some(stripped) = first.strip_prefix('\u{feff}') {
            *first = stripped.to_string();
        }
    }
    Ok(names)
}

/// The header row.
pub(super) fn read_header(path: &Path) -> Result<Vec<String>> {
    header(path, &mut reader(path)?)
}

/// The whole file.
pub(super) fn read(path: &Path) -> Result<Table> {
    let mut rdr = reader(path)?;
    let mut table = Table::new(path, header(path, &mut rdr)?);
    let mut record = ::csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(convert_error(path, e)),
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let row = record
            .iter()
            .map(|f| {
                if f.is_empty() {
                    Ok(None)
                } else {
                    field_text(path, line, f).map(Some)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        table.push(row, RowOrigin::Line(line));
    }
    Ok(table)
}
