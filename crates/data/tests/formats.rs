//! Reading each file format, and the errors for broken files.

use std::sync::Arc;

use ferrotune_data::{read_columns, read_table, Error, RowOrigin};
use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::common::write;

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn csv_reads_quoted_fields_and_empty_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "t.csv",
        "\u{feff}instruction,input,output\n\"Say \"\"hi\"\"\",,\"two\nlines\"\nx,y,z\n",
    );
    let t = read_table(&path).unwrap();
    assert_eq!(t.columns, ["instruction", "input", "output"]);
    assert_eq!(t.rows[0], vec![s("Say \"hi\""), None, s("two\nlines")]);
    assert_eq!(t.rows[1], vec![s("x"), s("y"), s("z")]);
    assert_eq!(t.origins, [RowOrigin::Line(2), RowOrigin::Line(4)]);
    assert_eq!(
        read_columns(&path).unwrap(),
        ["instruction", "input", "output"]
    );
}

#[test]
fn ragged_csv_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.csv", "a,b\n1,2\n3,4,5\n");
    let err = read_table(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RaggedCsv {
                line: 3,
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("bad.csv") && msg.contains("line 3") && msg.contains("help:"),
        "{msg}"
    );
}

#[test]
fn non_utf8_csv_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "latin1.csv",
        b"a,b\n1,2\ncaf\xe9,3\n".as_slice(),
    );
    let err = read_table(&path).unwrap_err();
    assert!(
        matches!(err, Error::NotUtf8 { line: Some(3), .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("latin1.csv") && msg.contains("UTF-8") && msg.contains("line 3"),
        "{msg}"
    );
}

#[test]
fn json_array_converts_values_and_keeps_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "t.json",
        r#"[{"zeta": "a", "alpha": 1, "flag": true, "x": null},
            {"alpha": 2.5, "nested": {"k": [1, 2]}, "zeta": "b"}]"#,
    );
    let t = read_table(&path).unwrap();
    assert_eq!(t.columns, ["zeta", "alpha", "flag", "x", "nested"]);
    assert_eq!(t.rows[0], vec![s("a"), s("1"), s("true"), None, None]);
    assert_eq!(
        t.rows[1],
        vec![s("b"), s("2.5"), None, None, s(r#"{"k":[1,2]}"#)]
    );
    assert_eq!(t.origin(1), RowOrigin::Record(2));
}

#[test]
fn json_that_is_not_an_array_of_objects_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let wrapped = write(
        dir.path(),
        "wrapped.json",
        r#"{"data": [{"a": 1}], "version": 2}"#,
    );
    let msg = read_table(&wrapped).unwrap_err().to_string();
    assert!(
        msg.contains("wrapped.json") && msg.contains("not a JSON array of objects"),
        "{msg}"
    );
    assert!(msg.contains("`data`"), "{msg}");

    let scalars = write(dir.path(), "scalars.json", r#"[{"a": 1}, "oops"]"#);
    let msg = read_table(&scalars).unwrap_err().to_string();
    assert!(
        msg.contains("element 2") && msg.contains("a string"),
        "{msg}"
    );

    let broken = write(dir.path(), "broken.json", r#"[{"a": 1},"#);
    let err = read_table(&broken).unwrap_err();
    assert!(matches!(err, Error::Json { .. }), "{err:?}");
}

#[test]
fn jsonl_reads_lines_and_names_the_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "t.jsonl", "{\"a\": \"x\"}\n\n{\"b\": 3}\r\n");
    let t = read_table(&good).unwrap();
    assert_eq!(t.columns, ["a", "b"]);
    assert_eq!(t.rows, vec![vec![s("x"), None], vec![None, s("3")]]);
    assert_eq!(t.origins, [RowOrigin::Line(1), RowOrigin::Line(3)]);

    let bad = write(dir.path(), "bad.jsonl", "{\"a\": 1}\n{\"a\": \n");
    let err = read_table(&bad).unwrap_err();
    assert!(matches!(err, Error::JsonLine { line: 2, .. }), "{err:?}");
    let array = write(dir.path(), "array.jsonl", "{\"a\": 1}\n[1]\n");
    let msg = read_table(&array).unwrap_err().to_string();
    assert!(
        msg.contains("line 2") && msg.contains("expected a JSON object"),
        "{msg}"
    );

    let latin = write(
        dir.path(),
        "latin.jsonl",
        b"{\"a\": \"x\"}\n{\"a\": \"caf\xe9\"}\n".as_slice(),
    );
    let err = read_table(&latin).unwrap_err();
    assert!(
        matches!(err, Error::NotUtf8 { line: Some(2), .. }),
        "{err:?}"
    );
}

#[test]
fn unknown_extension_is_an_error_with_the_supported_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "t.xlsx", "");
    let msg = read_table(&path).unwrap_err().to_string();
    assert!(
        msg.contains("t.xlsx") && msg.contains(".parquet") && msg.contains(".jsonl"),
        "{msg}"
    );
}

/// Writes a Parquet file like pandas would: strings (one with a null), an int id and a float parent id with nulls.
fn write_parquet(path: &std::path::Path, compression: Compression) {
    let schema = parse_message_type(
        "message schema {
            OPTIONAL BYTE_ARRAY instruction (UTF8);
            REQUIRED BYTE_ARRAY output (UTF8);
            REQUIRED INT64 id;
            OPTIONAL DOUBLE parent_id;
        }",
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_compression(compression)
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props)).unwrap();
    let mut group = writer.next_row_group().unwrap();

    let mut col = group.next_column().unwrap().unwrap();
    let values = [ByteArray::from("Hi"), ByteArray::from("More?")];
    col.typed::<ByteArrayType>()
        .write_batch(&values, Some(&[1, 0, 1]), None)
        .unwrap();
    col.close().unwrap();

    let mut col = group.next_column().unwrap().unwrap();
    let values = [
        ByteArray::from("Hello"),
        ByteArray::from("Empty prompt"),
        ByteArray::from("Yes"),
    ];
    col.typed::<ByteArrayType>()
        .write_batch(&values, None, None)
        .unwrap();
    col.close().unwrap();

    let mut col = group.next_column().unwrap().unwrap();
    col.typed::<Int64Type>()
        .write_batch(&[1, 2, 3], None, None)
        .unwrap();
    col.close().unwrap();

    let mut col = group.next_column().unwrap().unwrap();
    col.typed::<DoubleType>()
        .write_batch(&[1.0], Some(&[0, 0, 1]), None)
        .unwrap();
    col.close().unwrap();

    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_reads_strings_ints_floats_and_nulls() {
    let dir = tempfile::tempdir().unwrap();
    for (name, compression) in [
        ("snappy.parquet", Compression::SNAPPY),
        ("zstd.pq", Compression::ZSTD(ZstdLevel::default())),
    ] {
        let path = dir.path().join(name);
        write_parquet(&path, compression);
        assert_eq!(
            read_columns(&path).unwrap(),
            ["instruction", "output", "id", "parent_id"]
        );
        let t = read_table(&path).unwrap();
        assert_eq!(t.rows[0], vec![s("Hi"), s("Hello"), s("1"), None]);
        assert_eq!(t.rows[1], vec![None, s("Empty prompt"), s("2"), None]);
        // The float parent id 1.0 reads as `1`, so it matches the integer id.
        assert_eq!(t.rows[2], vec![s("More?"), s("Yes"), s("3"), s("1")]);
        assert_eq!(t.origin(2), RowOrigin::Record(3));
    }
}

#[test]
fn a_file_that_is_not_parquet_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "fake.parquet", "a,b\n1,2\n");
    let msg = read_table(&path).unwrap_err().to_string();
    assert!(
        msg.contains("fake.parquet") && msg.contains("Parquet"),
        "{msg}"
    );
}
