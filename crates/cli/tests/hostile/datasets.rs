//! Dataset imports: each bad file is refused naming the file, the line or column, and the fix, and registers
//! nothing (no row, no folder under `datasets/`).

use std::io::Write;

use crate::catalogue::{Case, Check};
use crate::lab::{s, Lab};

pub const CASES: &[Case] = &[
    Case {
        id: "datasets.ragged-csv",
        guards: "a CSV row with more fields than the header names the file and the line",
        check: Check::Run(ragged_csv),
    },
    Case {
        id: "datasets.unterminated-quote",
        guards: "a CSV quote that never closes names the line it opens on",
        check: Check::Run(unterminated_quote),
    },
    Case {
        id: "datasets.not-utf8",
        guards: "a Latin-1 CSV names the line and how to re-save it as UTF-8",
        check: Check::Run(not_utf8),
    },
    Case {
        id: "datasets.json-object",
        guards: "a JSON file holding one object (not an array) says where the rows may be",
        check: Check::Run(json_object),
    },
    Case {
        id: "datasets.broken-jsonl-line",
        guards: "a broken JSONL line is named by its number, once",
        check: Check::Run(broken_jsonl_line),
    },
    Case {
        id: "datasets.empty-answers",
        guards: "a file whose answers are all empty names the answer column and the flag that picks another",
        check: Check::Run(empty_answers),
    },
    Case {
        id: "datasets.empty-file",
        guards: "an empty file is refused as having no rows",
        check: Check::Run(empty_file),
    },
    Case {
        id: "datasets.header-only",
        guards: "a CSV with a header and no rows is refused as having no rows",
        check: Check::Run(header_only),
    },
    Case {
        id: "datasets.parent-cycle",
        guards: "`parent_id`s that form a cycle are rejected at import naming an id, even without the column flags",
        check: Check::Run(parent_cycle),
    },
    Case {
        id: "datasets.duplicate-ids",
        guards: "an id given twice names the id and both lines",
        check: Check::Run(duplicate_ids),
    },
    Case {
        id: "datasets.empty-zip",
        guards: "an empty zip archive says it holds no dataset files and which files count",
        check: Check::Run(empty_zip),
    },
    Case {
        id: "datasets.unsafe-zip-member",
        guards: "a zip whose only member is `../../evil.csv` says the member was skipped as unsafe, and writes nothing outside",
        check: Check::Run(unsafe_zip_member),
    },
    Case {
        id: "datasets.garbage-parquet",
        guards: "a `.parquet` file that is not Parquet says so in words, with how to write one",
        check: Check::Run(garbage_parquet),
    },
    Case {
        id: "datasets.unsupported-type",
        guards: "a `.txt` file lists the file types that import",
        check: Check::Run(unsupported_type),
    },
    Case {
        id: "datasets.missing-file",
        guards: "a path that does not exist is named",
        check: Check::Run(missing_file),
    },
    Case {
        id: "datasets.folder-without-data",
        guards: "a folder with no data files in it says which files count",
        check: Check::Run(folder_without_data),
    },
    Case {
        id: "datasets.unknown-mapped-column",
        guards: "`--answer-column` of a column the file lacks lists the columns it has and the flag",
        check: Check::Run(unknown_mapped_column),
    },
    Case {
        id: "datasets.unrecognised-columns",
        guards: "columns of no known layout are listed with the flags that map them",
        check: Check::Run(unrecognised_columns),
    },
    Case {
        id: "datasets.bad-validation-file",
        guards: "a broken `--validation` file refuses the whole import: the good train file is not registered alone",
        check: Check::Run(bad_validation_file),
    },
    Case {
        id: "datasets.name-taken",
        guards: "importing under a name already taken is refused and the first dataset is unchanged",
        check: Check::Run(name_taken),
    },
    Case {
        id: "datasets.name-traversal",
        guards: "`--name ../x` is an invalid dataset name, naming `--name`",
        check: Check::Run(name_traversal),
    },
    Case {
        id: "datasets.name-with-space",
        guards: "a name with a space is refused (names are typed on command lines), naming the character",
        check: Check::Run(name_with_space),
    },
    Case {
        id: "datasets.name-unicode",
        guards: "a name with `é` is refused naming the character (names are ASCII letters, digits, `-`, `_`, `.`)",
        check: Check::Run(name_unicode),
    },
    Case {
        id: "datasets.name-script",
        guards: "a name `<script>…</script>` is refused, so it never reaches a page",
        check: Check::Run(name_script),
    },
    Case {
        id: "datasets.unknown-name",
        guards: "`dataset show`, `merge` and `delete` of a name that is not registered name it and how to list them",
        check: Check::Run(unknown_name),
    },
    Case {
        id: "datasets.two-imports-at-once",
        guards: "two imports of the same name at the same moment: one wins, the other is told, nothing is left over",
        check: Check::Elsewhere("crates/cli/tests/dataset.rs::two_processes_import_at_the_same_moment"),
    },
    Case {
        id: "datasets.big-csv",
        guards: "a 300 MB CSV imports within 1 GB of memory (opt-in: `FERROTUNE_HOSTILE_BIG=1`)",
        check: Check::Run(crate::faults::big_csv),
    },
];

/// `dataset import FILE --name bad` refuses with `needles`, and the name stays free.
fn import(lab: &Lab, file: &str, needles: &[&str]) {
    lab.refuses(&["dataset", "import", file, "--name", "bad"], needles);
}

fn ragged_csv(lab: &Lab) {
    let f = lab.file("ragged.csv", "prompt,answer\nq,a\nq,a,b\n");
    import(
        lab,
        &f,
        &["ragged.csv", "line 3", "expected 2 fields", "help:"],
    );
}

fn unterminated_quote(lab: &Lab) {
    let f = lab.file("quote.csv", "prompt,answer\n\"q,a\nq2,a2\n");
    import(lab, &f, &["quote.csv", "line 2", "never closed", "help:"]);
}

fn not_utf8(lab: &Lab) {
    let f = lab.file("latin1.csv", b"prompt,answer\ncaf\xe9,a\n");
    import(
        lab,
        &f,
        &["latin1.csv", "UTF-8", "line 2", "help:", "iconv"],
    );
}

fn json_object(lab: &Lab) {
    let f = lab.file(
        "object.json",
        r#"{"rows": [{"prompt": "q", "answer": "a"}]}"#,
    );
    import(
        lab,
        &f,
        &[
            "object.json",
            "not a JSON array of objects",
            "`rows`",
            "help:",
        ],
    );
}

fn broken_jsonl_line(lab: &Lab) {
    let f = lab.file(
        "broken.jsonl",
        "{\"prompt\": \"q\", \"answer\": \"a\"}\n{\"prompt\": oops}\n{\"prompt\": \"q\", \"answer\": \"a\"}\n",
    );
    let o = lab.refuses(
        &["dataset", "import", &f, "--name", "bad"],
        &["broken.jsonl", "line 2", "help:"],
    );
    let err = crate::lab::stderr(&o);
    assert_eq!(err.matches("line ").count(), 1, "one line number: {err}");
}

fn empty_answers(lab: &Lab) {
    let f = lab.file("empty-answers.csv", "prompt,answer\nq,\nq2,\n");
    import(
        lab,
        &f,
        &[
            "empty-answers.csv",
            "column `answer`",
            "is empty",
            "--answer-column",
        ],
    );
}

fn empty_file(lab: &Lab) {
    let f = lab.file("empty.csv", "");
    import(lab, &f, &["empty.csv", "has no rows", "help:"]);
}

fn header_only(lab: &Lab) {
    let f = lab.file("header.csv", "prompt,answer\n");
    import(lab, &f, &["header.csv", "has no rows", "help:"]);
}

fn parent_cycle(lab: &Lab) {
    let f = lab.file(
        "cycle.csv",
        "id,parent_id,prompt,answer\n1,2,q,a\n2,1,q,a\n",
    );
    import(
        lab,
        &f,
        &["cycle.csv", "`parent_id`", "cycle", "id `", "help:"],
    );
}

fn duplicate_ids(lab: &Lab) {
    let f = lab.file("dup.csv", "id,parent_id,prompt,answer\n1,,q,a\n1,,q2,a2\n");
    import(
        lab,
        &f,
        &["dup.csv", "id `1` twice", "line 2", "line 3", "help:"],
    );
}

fn zip_of(lab: &Lab, name: &str, members: &[(&str, &str)]) -> String {
    let path = lab.path(name);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for (member, text) in members {
        zip.start_file(*member, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    s(&path)
}

fn empty_zip(lab: &Lab) {
    let f = zip_of(lab, "empty.zip", &[]);
    import(lab, &f, &["empty.zip", "holds no dataset files", "help:"]);
}

fn unsafe_zip_member(lab: &Lab) {
    let f = zip_of(
        lab,
        "evil.zip",
        &[("../../evil.csv", "prompt,answer\nq,a\n")],
    );
    import(
        lab,
        &f,
        &["evil.zip", "`../../evil.csv`", "unsafe", "help:"],
    );
    for dir in [
        lab.scratch().to_path_buf(),
        lab.scratch().parent().unwrap().to_path_buf(),
        lab.home(),
    ] {
        assert!(
            !dir.join("evil.csv").exists(),
            "evil.csv was written in {}",
            dir.display()
        );
    }
}

fn garbage_parquet(lab: &Lab) {
    let f = lab.file("garbage.parquet", "PAR1 this is not parquet at all PAR1");
    import(
        lab,
        &f,
        &["garbage.parquet", "not a readable Parquet file", "help:"],
    );
}

fn unsupported_type(lab: &Lab) {
    let f = lab.file("notes.txt", "prompt,answer\nq,a\n");
    import(
        lab,
        &f,
        &[
            "notes.txt",
            "unsupported file type",
            "help:",
            ".csv",
            ".jsonl",
        ],
    );
}

fn missing_file(lab: &Lab) {
    import(
        lab,
        &s(&lab.path("no-such.csv")),
        &["cannot find", "no-such.csv", "help: check the path"],
    );
}

fn folder_without_data(lab: &Lab) {
    let dir = lab.path("no-data-here");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("README.md"), "# notes\n").unwrap();
    import(
        lab,
        &s(&dir),
        &["no-data-here", "holds no dataset files", "help:", ".csv"],
    );
}

fn unknown_mapped_column(lab: &Lab) {
    let f = lab.file("mapped.csv", "question,reply\nq,a\n");
    lab.refuses(
        &[
            "dataset",
            "import",
            &f,
            "--name",
            "bad",
            "--prompt-column",
            "question",
            "--answer-column",
            "replies",
        ],
        &[
            "mapped.csv",
            "no column `replies`",
            "its columns are `question`, `reply`",
            "did you mean `reply`?",
            "--answer-column",
        ],
    );
}

fn unrecognised_columns(lab: &Lab) {
    let f = lab.file("body.csv", "body\nsome text here\n");
    import(
        lab,
        &f,
        &[
            "body.csv",
            "cannot tell which columns",
            "`body`",
            "--format",
        ],
    );
}

fn bad_validation_file(lab: &Lab) {
    let train = lab.file("train-ok.csv", "prompt,answer\nq,a\n");
    let valid = lab.file("valid-ragged.csv", "prompt,answer\nq,a,b\n");
    lab.refuses(
        &[
            "dataset",
            "import",
            &train,
            "--name",
            "bad",
            "--validation",
            &valid,
        ],
        &["valid-ragged.csv", "line 2", "help:"],
    );
}

fn name_taken(lab: &Lab) {
    let f = lab.file("again.csv", "prompt,answer\nq,a\n");
    lab.refuses(
        &["dataset", "import", &f, "--name", "good"],
        &["`good` already exists", "help:", "`--name`"],
    );
}

fn bad_name(lab: &Lab, name: &str, needles: &[&str]) {
    let f = lab.file("named.csv", "prompt,answer\nq,a\n");
    lab.refuses(&["dataset", "import", &f, "--name", name], needles);
}

fn name_traversal(lab: &Lab) {
    bad_name(
        lab,
        "../x",
        &["invalid dataset name `../x`", "help:", "`--name`"],
    );
}

fn name_with_space(lab: &Lab) {
    bad_name(
        lab,
        "my data",
        &["invalid dataset name `my data`", "contains ` `", "help:"],
    );
}

fn name_unicode(lab: &Lab) {
    bad_name(
        lab,
        "données",
        &["invalid dataset name `données`", "contains `é`", "help:"],
    );
}

fn name_script(lab: &Lab) {
    bad_name(
        lab,
        "<script>alert(1)</script>",
        &["invalid dataset name", "contains `<`", "help:"],
    );
}

fn unknown_name(lab: &Lab) {
    let more = lab.file("more.csv", "prompt,answer\nq,a\n");
    for args in [
        vec!["dataset", "show", "nope"],
        vec!["dataset", "merge", "nope", &more],
        vec!["dataset", "delete", "nope"],
    ] {
        lab.refuses(&args, &["no dataset named `nope`", "help:", "dataset list"]);
    }
}
