//! Bad files: a clear error naming the file, the line or row and the fix; nothing half-imported remains.

use ferrotune_store::{ImportOptions, Mapping};

use crate::common::TestHome;

/// Imports `text` as `name` and returns the error, after checking that nothing was left behind.
fn failure(file_name: &str, text: &[u8], mapping: Mapping) -> String {
    let mut t = TestHome::new();
    let file = t.file(file_name, text);
    let err = t
        .store
        .import_dataset(&ImportOptions {
            name: "bad".into(),
            train: file,
            validation: None,
            mapping,
        })
        .unwrap_err()
        .to_string();
    assert!(t.store.datasets().unwrap().is_empty(), "no registry row");
    assert!(
        t.dataset_entries().is_empty(),
        "no folder left: {:?}",
        t.dataset_entries()
    );
    assert!(err.contains(file_name), "the error names the file: {err}");
    err
}

#[test]
fn ragged_csv_names_the_line() {
    let err = failure(
        "r.csv",
        b"prompt,answer\nq,a\nq,a,extra\n",
        Mapping::default(),
    );
    assert!(
        err.contains("line 3") && err.contains("expected 2 fields"),
        "{err}"
    );
}

#[test]
fn broken_quoting_names_the_line() {
    let err = failure(
        "q.csv",
        b"prompt,answer\nq,a\n\"unclosed,a\nq,a\n",
        Mapping::default(),
    );
    assert!(
        err.contains("line 3")
            && err.contains("never closed")
            && err.contains("help: close the quote"),
        "{err}"
    );
}

#[test]
fn non_utf8_names_the_line_and_the_fix() {
    let err = failure(
        "l.csv",
        b"prompt,answer\nq,a\ncaf\xe9,a\n",
        Mapping::default(),
    );
    assert!(
        err.contains("not valid UTF-8") && err.contains("line 3") && err.contains("iconv"),
        "{err}"
    );
    let err = failure(
        "l.jsonl",
        b"{\"prompt\": \"q\", \"answer\": \"a\"}\n{\"prompt\": \"caf\xe9\"}\n",
        Mapping::default(),
    );
    assert!(err.contains("line 2") && err.contains("iconv"), "{err}");
    let err = failure(
        "l.json",
        b"[{\"prompt\": \"q\", \"answer\": \"a\"},\n {\"prompt\": \"caf\xe9\"}]",
        Mapping::default(),
    );
    assert!(err.contains("line 2") && err.contains("iconv"), "{err}");
}

#[test]
fn json_that_is_not_an_array_of_objects() {
    let err = failure(
        "o.json",
        br#"{"data": [{"prompt": "q", "answer": "a"}]}"#,
        Mapping::default(),
    );
    assert!(
        err.contains("one object") && err.contains("`data`"),
        "{err}"
    );
    let err = failure(
        "n.json",
        br#"[{"prompt": "q", "answer": "a"}, 3]"#,
        Mapping::default(),
    );
    assert!(
        err.contains("element 2") && err.contains("a number"),
        "{err}"
    );
}

#[test]
fn a_missing_mapped_column_suggests_the_closest_name() {
    let mapping = Mapping {
        prompt: vec!["prompt".into()],
        answer: Some("respons".into()),
        ..Mapping::default()
    };
    let err = failure("m.csv", b"prompt,response\nq,a\n", mapping);
    assert!(
        err.contains("no column `respons`")
            && err.contains("did you mean `response`")
            && err.contains("`mapping.answer`"),
        "{err}"
    );
}

#[test]
fn unrecognised_columns_list_the_columns_and_the_settings() {
    let err = failure("u.csv", b"foo,bar\n1,2\n", Mapping::default());
    assert!(
        err.contains("`foo`, `bar`") && err.contains("`mapping.prompt`"),
        "{err}"
    );
}

#[test]
fn all_answers_empty() {
    let err = failure("e.csv", b"prompt,answer\nq,\nq2,\n", Mapping::default());
    assert!(
        err.contains("every answer") && err.contains("`answer`"),
        "{err}"
    );
}

#[test]
fn duplicate_ids_and_parent_cycles() {
    let err = failure(
        "d.csv",
        b"id,prompt,answer\n1,q,a\n1,q,a\n",
        Mapping::default(),
    );
    assert!(err.contains("`1` twice") && err.contains("line 3"), "{err}");
    let err = failure(
        "c.csv",
        b"id,parent_id,prompt,answer\n1,2,q,a\n2,1,q,a\n",
        Mapping::default(),
    );
    assert!(err.contains("cycle"), "{err}");
}

#[test]
fn a_bad_conversation_names_the_row_and_message() {
    let err = failure(
        "s.jsonl",
        b"{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}\n{\"conversations\": [{\"from\": \"gpt\", \"value\": \"a\"}]}\n",
        Mapping::default(),
    );
    assert!(
        err.contains("line 2") && err.contains("message 1") && err.contains("alternate"),
        "{err}"
    );
}

#[test]
fn a_bad_zip_member_names_the_archive_and_member() {
    use std::io::Write;
    let mut t = TestHome::new();
    let archive = t.dir.path().join("bad.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
    zip.start_file("inner/x.csv", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"prompt,answer\nq\n").unwrap();
    zip.finish().unwrap();
    let err = t.import("bad", &archive).unwrap_err().to_string();
    assert!(
        err.contains("bad.zip") && err.contains("inner/x.csv") && err.contains("line 2"),
        "{err}"
    );
    assert!(t.dataset_entries().is_empty(), "{:?}", t.dataset_entries());
    let err = t
        .import("bad", &t.file("junk.zip", "not a zip"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("junk.zip") && err.contains("zip"), "{err}");
}

#[test]
fn an_existing_name_is_refused_and_names_are_checked() {
    let mut t = TestHome::new();
    let file = t.file("a.csv", "prompt,answer\nq,a\n");
    t.import("one", &file).unwrap();
    let err = t.import("one", &file).unwrap_err().to_string();
    assert!(
        err.contains("already exists") && err.contains("dataset merge one"),
        "{err}"
    );
    let err = t.import("../escape", &file).unwrap_err().to_string();
    assert!(err.contains("invalid dataset name"), "{err}");
    let err = t.store.dataset("onee").unwrap_err().to_string();
    assert!(err.contains("did you mean `one`"), "{err}");
}

#[test]
fn a_missing_input_says_so() {
    let mut t = TestHome::new();
    let missing = t.dir.path().join("nope.csv");
    let err = t.import("x", &missing).unwrap_err().to_string();
    assert!(
        err.contains("cannot find") && err.contains("nope.csv") && err.contains("help:"),
        "{err}"
    );
    assert!(t.dataset_entries().is_empty());
}
