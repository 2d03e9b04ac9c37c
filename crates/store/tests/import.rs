//! Every supported layout and container becomes the canonical table, with statistics, originals and metadata.

use std::io::Write;

use ferrotune_store::{DatasetInfo, ImportOptions, Mapping, Shape, Split};

use crate::common::TestHome;

#[test]
fn alpaca_json_becomes_the_canonical_table_an_experiment_can_read() {
    let mut t = TestHome::new();
    let file = t.file(
        "alpaca.json",
        r#"[{"instruction": "Add", "input": "1 and 2", "output": "3", "system": "math"},
            {"instruction": "Greet", "output": "Hello there"}]"#,
    );
    let info = t.import("alpaca", &file).unwrap();
    assert_eq!(info.format, "alpaca (json)");
    assert_eq!(info.train.rows, 2);
    let rows = t.store.sample("alpaca", Split::Train, 10).unwrap();
    assert_eq!(rows[0].prompt, "Add\n\n1 and 2");
    assert_eq!(
        (rows[0].system.as_str(), rows[0].answer.as_str()),
        ("math", "3")
    );
    assert_eq!(rows[1].prompt, "Greet");
    // The data crate reads the canonical file as a training dataframe.
    let path = t.store.table_path("alpaca", Split::Train).unwrap();
    let table = ferrotune_data::read_table(&path).unwrap();
    assert_eq!(
        table.columns,
        ["id", "parent_id", "system", "prompt", "answer"]
    );
    assert_eq!(table.len(), 2);
    // dataset.json is the source of truth and matches the registry row.
    let on_disk = DatasetInfo::load(&t.store.dataset_dir("alpaca")).unwrap();
    assert_eq!(on_disk, t.store.dataset("alpaca").unwrap());
    assert!(t
        .store
        .dataset_dir("alpaca")
        .join(&on_disk.files[0].original)
        .is_file());
    // Column counts: `input` and `system` are missing from the second object.
    let cols = &info.train.statistics.columns;
    assert_eq!((cols["input"].values, cols["input"].nulls), (1, 1));
    assert_eq!(cols["output"].values, 2);
}

#[test]
fn alpaca_history_becomes_earlier_turns() {
    let mut t = TestHome::new();
    let file = t.file(
        "hist.json",
        r#"[{"instruction": "and now?", "output": "done", "history": [["first", "one"], ["second", "two"]]},
            {"instruction": "alone", "output": "single"}]"#,
    );
    let info = t.import("hist", &file).unwrap();
    let stats = &info.train.statistics;
    assert_eq!((stats.rows, stats.conversations), (4, 2));
    assert_eq!(stats.turns_per_conversation.get(&3), Some(&1));
    let rows = t.store.sample("hist", Split::Train, 4).unwrap();
    let prompts: Vec<&str> = rows.iter().map(|r| r.prompt.as_str()).collect();
    assert_eq!(prompts, ["first", "second", "and now?", "alone"]);
    assert_eq!(rows[2].parent_id.as_deref(), Some(rows[1].id.as_str()));
    assert_eq!(rows[3].parent_id, None);
}

#[test]
fn sharegpt_conversations_are_chained_turns_with_statistics() {
    let mut t = TestHome::new();
    let line = |turns: &[(&str, &str)]| {
        let conv: Vec<_> = turns
            .iter()
            .map(|(from, value)| serde_json::json!({"from": from, "value": value}))
            .collect();
        serde_json::json!({ "conversations": conv }).to_string()
    };
    let text = [
        line(&[
            ("system", "be brief"),
            ("human", "hi"),
            ("gpt", "hello"),
            ("human", "how are you"),
            ("gpt", "fine"),
        ]),
        line(&[("human", "one"), ("gpt", "two words")]),
    ]
    .join("\n");
    let file = t.file("chat.jsonl", text);
    let info = t.import("chat", &file).unwrap();
    let stats = &info.train.statistics;
    assert_eq!((stats.rows, stats.conversations), (3, 2));
    assert_eq!(stats.turns_per_conversation.get(&2), Some(&1));
    assert_eq!(stats.turns_per_conversation.get(&1), Some(&1));
    // "be brief" + "hi hello how are you fine" = 8 words; "one two words" = 3.
    assert_eq!(
        (stats.conversation_words.min, stats.conversation_words.max),
        (3, 8)
    );
    let rows = t.store.sample("chat", Split::Train, 3).unwrap();
    assert_eq!(rows[1].parent_id.as_deref(), Some(rows[0].id.as_str()));
    assert_eq!(rows[0].system, "be brief");
    assert_eq!(rows[2].parent_id, None);
}

#[test]
fn openai_messages_in_csv_with_a_validation_file() {
    let mut t = TestHome::new();
    let messages = |q: &str, a: &str| {
        serde_json::json!([{"role": "system", "content": "sys"}, {"role": "user", "content": q}, {"role": "assistant", "content": a}])
            .to_string()
            .replace('"', "\"\"")
    };
    let train = t.file(
        "train.csv",
        format!(
            "id,messages\n7,\"{}\"\n8,\"{}\"\n",
            messages("q1", "a1"),
            messages("q2", "a2")
        ),
    );
    let valid = t.file(
        "valid.csv",
        format!("messages\n\"{}\"\n", messages("q3", "a3")),
    );
    let info = t
        .store
        .import_dataset(&ImportOptions {
            name: "oa".into(),
            train,
            validation: Some(valid),
            mapping: Mapping::default(),
        })
        .unwrap();
    assert_eq!(info.format, "openai (csv)");
    assert_eq!(info.validation.as_ref().unwrap().rows, 1);
    let rows = t.store.sample("oa", Split::Train, 5).unwrap();
    assert_eq!(rows[0].id, "7");
    assert_eq!(
        (
            rows[1].prompt.as_str(),
            rows[1].answer.as_str(),
            rows[1].system.as_str()
        ),
        ("q2", "a2", "sys")
    );
    let v = t.store.sample("oa", Split::Validation, 5).unwrap();
    assert_eq!(v[0].answer, "a3");
    assert!(t.store.dataset_dir("oa").join("validation.jsonl").is_file());
    assert!(t
        .store
        .dataset_dir("oa")
        .join("original/validation/valid.csv")
        .is_file());
}

#[test]
fn explicit_flat_mapping_with_parent_ids_and_plain_text() {
    let mut t = TestHome::new();
    let file = t.file(
        "flat.csv",
        "msg_id,prev,q,a,sys\nx1,,hello,hi,s\nx2,x1,again,sure,\n",
    );
    let info = t
        .store
        .import_dataset(&ImportOptions {
            name: "flat".into(),
            train: file,
            validation: None,
            mapping: Mapping {
                prompt: vec!["q".into()],
                answer: Some("a".into()),
                system: Some("sys".into()),
                id: Some("msg_id".into()),
                parent_id: Some("prev".into()),
                ..Mapping::default()
            },
        })
        .unwrap();
    assert_eq!(info.train.statistics.conversations, 1);
    assert_eq!(info.files[0].mapping.answer.as_deref(), Some("a"));
    let rows = t.store.sample("flat", Split::Train, 5).unwrap();
    assert_eq!(rows[1].parent_id.as_deref(), Some("x1"));
    assert_eq!(info.train.statistics.empty.system, 1);

    let text = t.file("c4.jsonl", "{\"text\": \"a b c\"}\n{\"text\": \"d\"}\n");
    let info = t.import("c4", &text).unwrap();
    assert_eq!(info.files[0].shape, Shape::Text);
    assert_eq!(info.train.statistics.empty.prompt, 2);
    assert_eq!(info.train.statistics.answer_words.max, 3);
}

#[test]
fn zip_archives_and_folders_import_every_data_file() {
    let mut t = TestHome::new();
    let archive = t.dir.path().join("data.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file("part1.csv", opts).unwrap();
    zip.write_all(b"prompt,answer\nq1,a1\n").unwrap();
    zip.start_file("part2.jsonl", opts).unwrap();
    zip.write_all(b"{\"prompt\": \"q2\", \"answer\": \"a2\"}\n")
        .unwrap();
    zip.finish().unwrap();
    let info = t.import("zipped", &archive).unwrap();
    assert_eq!(info.train.rows, 2);
    assert_eq!(info.files.len(), 2);
    assert!(info.files[0].source.ends_with("data.zip!part1.csv"));
    assert_eq!(info.format, "flat (csv), flat (jsonl)");

    t.file("folder/a.csv", "prompt,answer\nq,a\n");
    t.file("folder/b.json", r#"[{"prompt": "q", "answer": "b"}]"#);
    t.file("folder/notes.txt", "ignored");
    let info = t.import("folder", &t.dir.path().join("folder")).unwrap();
    assert_eq!(info.train.rows, 2);
    assert_eq!(t.dataset_entries(), ["folder", "zipped"]);
}

#[test]
fn merge_appends_rows_keeps_ids_unique_and_recomputes_statistics() {
    let mut t = TestHome::new();
    let first = t.file("a.csv", "prompt,answer\nq1,a1\nq2,a2\n");
    t.import("ds", &first).unwrap();
    let more = t.file(
        "b.jsonl",
        "{\"prompt\": \"q3\", \"answer\": \"three words here\"}\n",
    );
    let info = t
        .store
        .merge_dataset("ds", &more, &Mapping::default(), Split::Train)
        .unwrap();
    assert_eq!(info.train.rows, 3);
    assert_eq!(info.train.statistics.answer_words.max, 3);
    assert_eq!(info.files.len(), 2);
    let rows = t.store.sample("ds", Split::Train, 10).unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r0", "r1", "r2"]);
    // Column counts of both files are kept.
    assert_eq!(info.train.statistics.columns["prompt"].values, 3);
    assert_eq!(DatasetInfo::load(&t.store.dataset_dir("ds")).unwrap(), info);

    // A clashing id is refused and leaves the dataset as it was.
    let clash = t.file("c.csv", "id,prompt,answer\nr1,q,a\n");
    let err = t
        .store
        .merge_dataset("ds", &clash, &Mapping::default(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`r1` twice"), "{err}");
    assert_eq!(t.store.dataset("ds").unwrap().train.rows, 3);
    assert_eq!(t.store.sample("ds", Split::Train, 10).unwrap().len(), 3);
    assert_eq!(t.dataset_entries(), ["ds"]);
}

#[test]
fn delete_removes_the_folder_and_the_row() {
    let mut t = TestHome::new();
    let file = t.file("a.csv", "prompt,answer\nq,a\n");
    t.import("gone", &file).unwrap();
    t.store.delete_dataset("gone").unwrap();
    assert!(t.store.datasets().unwrap().is_empty());
    assert!(t.dataset_entries().is_empty());
    let err = t.store.delete_dataset("gone").unwrap_err().to_string();
    assert!(err.contains("no dataset named `gone`"), "{err}");
}

/// A Parquet file like pandas writes: string columns, an int64 id and a nullable float parent id.
fn write_parquet(path: &std::path::Path) {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let schema = parquet::schema::parser::parse_message_type(
        "message schema {
            REQUIRED BYTE_ARRAY question (UTF8);
            REQUIRED BYTE_ARRAY response (UTF8);
            REQUIRED INT64 id;
            OPTIONAL DOUBLE parent_id;
        }",
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let props = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    for texts in [["hi", "more"], ["hello", "sure"]] {
        let mut col = group.next_column().unwrap().unwrap();
        let values: Vec<ByteArray> = texts.iter().map(|t| ByteArray::from(*t)).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&values, None, None)
            .unwrap();
        col.close().unwrap();
    }
    let mut col = group.next_column().unwrap().unwrap();
    col.typed::<Int64Type>()
        .write_batch(&[1, 2], None, None)
        .unwrap();
    col.close().unwrap();
    let mut col = group.next_column().unwrap().unwrap();
    col.typed::<DoubleType>()
        .write_batch(&[1.0], Some(&[0, 1]), None)
        .unwrap();
    col.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_rows_stream_with_numeric_ids_and_float_parents() {
    let mut t = TestHome::new();
    let path = t.dir.path().join("chat.parquet");
    write_parquet(&path);
    let info = t.import("pq", &path).unwrap();
    assert_eq!(info.format, "flat (parquet)");
    assert_eq!(info.train.statistics.conversations, 1);
    let rows = t.store.sample("pq", Split::Train, 5).unwrap();
    assert_eq!(rows[1].id, "2");
    // pandas writes integer parent ids with nulls as floats: `1.0` still names row `1`.
    assert_eq!(rows[1].parent_id.as_deref(), Some("1"));
    assert_eq!(
        (rows[1].prompt.as_str(), rows[1].answer.as_str()),
        ("more", "sure")
    );
    assert_eq!(info.train.statistics.columns["parent_id"].nulls, 1);
}

/// OpenAI messages as Hugging Face stores them in Parquet: a LIST of {role, content} structs.
#[test]
fn nested_parquet_messages_become_turns() {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let mut t = TestHome::new();
    let path = t.dir.path().join("messages.parquet");
    let schema = parquet::schema::parser::parse_message_type(
        "message schema {
            REQUIRED group messages (LIST) {
                REPEATED group list {
                    OPTIONAL group element {
                        OPTIONAL BYTE_ARRAY role (UTF8);
                        OPTIONAL BYTE_ARRAY content (UTF8);
                    }
                }
            }
        }",
    )
    .unwrap();
    let file = std::fs::File::create(&path).unwrap();
    let props = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    // Two rows: [user, assistant, user, assistant] and [user, assistant].
    let rep = [0, 1, 1, 1, 0, 1];
    let def = [3; 6];
    for texts in [
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant",
        ],
        ["q1", "a1", "q2", "a2", "q3", "a3"],
    ] {
        let mut col = group.next_column().unwrap().unwrap();
        let values: Vec<ByteArray> = texts.iter().map(|t| ByteArray::from(*t)).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&values, Some(&def), Some(&rep))
            .unwrap();
        col.close().unwrap();
    }
    group.close().unwrap();
    writer.close().unwrap();

    let info = t.import("nested", &path).unwrap();
    assert_eq!(info.format, "openai (parquet)");
    assert_eq!(
        (info.train.rows, info.train.statistics.conversations),
        (3, 2)
    );
    let rows = t.store.sample("nested", Split::Train, 5).unwrap();
    assert_eq!(
        (rows[1].prompt.as_str(), rows[1].answer.as_str()),
        ("q2", "a2")
    );
    assert_eq!(rows[1].parent_id.as_deref(), Some(rows[0].id.as_str()));
    assert_eq!(rows[2].answer, "a3");
}

/// LLaMA-Factory's demo DPO file, when the assets are there (`ferrotune assets fetch`).
fn dpo_en_demo() -> Option<std::path::PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = std::path::Path::new(&home)
        .join(".local/share/ferrotune/assets/llamafactory-0.9.5-data/dpo_en_demo.json");
    path.is_file().then_some(path)
}

#[test]
fn llamafactory_pairs_become_chained_turns_with_chosen_and_rejected_columns() {
    let mut t = TestHome::new();
    let file = t.file(
        "dpo.json",
        r#"[{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}, {"from": "human", "value": "2+2?"}],
             "chosen": {"from": "gpt", "value": "four"}, "rejected": {"from": "gpt", "value": "five or so"}, "system": "be exact"},
            {"conversations": [{"from": "human", "value": "capital of France?"}], "chosen": "Paris", "rejected": "Lyon"}]"#,
    );
    let info = t.import("lf", &file).unwrap();
    assert_eq!(info.format, "preference (llamafactory) (json)");
    assert_eq!(info.files[0].shape, Shape::LlamaFactory);
    assert!(info.is_preference());
    assert_eq!(
        (info.answer_column(), info.rejected_answer_column()),
        ("chosen_response", Some("rejected_response"))
    );
    let stats = &info.train.statistics;
    assert_eq!((stats.rows, stats.conversations), (3, 2));
    let pairs = stats.preference.as_ref().unwrap();
    assert_eq!(pairs.rows, 2);
    assert_eq!((pairs.chosen_words.max, pairs.rejected_words.max), (1, 3));
    let rows = t.store.sample("lf", Split::Train, 5).unwrap();
    assert_eq!(rows[0].system, "be exact");
    assert_eq!(rows[0].rejected.as_deref(), Some(""));
    assert_eq!(rows[1].parent_id.as_deref(), Some(rows[0].id.as_str()));
    assert_eq!(
        (
            rows[1].prompt.as_str(),
            rows[1].answer.as_str(),
            rows[1].rejected.as_deref()
        ),
        ("2+2?", "four", Some("five or so"))
    );
    let path = t.store.table_path("lf", Split::Train).unwrap();
    let table = ferrotune_data::read_table(&path).unwrap();
    assert_eq!(table.columns, ferrotune_data::import::PREFERENCE_COLUMNS);
    // dataset.json reads back with the new statistics.
    let on_disk = DatasetInfo::load(&t.store.dataset_dir("lf")).unwrap();
    assert_eq!(on_disk, t.store.dataset("lf").unwrap());
}

#[test]
fn the_llamafactory_demo_file_imports_every_pair() {
    let Some(path) = dpo_en_demo() else {
        eprintln!("skipped: dpo_en_demo.json is not in the assets (run `ferrotune assets fetch`)");
        return;
    };
    let mut t = TestHome::new();
    let info = t.import("dpo", &path).unwrap();
    assert_eq!(info.format, "preference (llamafactory) (json)");
    let stats = &info.train.statistics;
    assert_eq!(info.files[0].records, 300);
    // 300 conversations of 1 to 7 user turns; the last turn of each holds the pair.
    assert_eq!((stats.rows, stats.conversations), (563, 300));
    let pairs = stats.preference.as_ref().unwrap();
    assert_eq!((pairs.rows, pairs.identical), (300, 0));
    assert!(pairs.chosen_words.min > 0 && pairs.rejected_words.min > 0);
    let rows = t.store.sample("dpo", Split::Train, 1000).unwrap();
    let with_rejected = rows
        .iter()
        .filter(|r| !r.rejected.as_deref().unwrap_or("").is_empty())
        .count();
    assert_eq!(with_rejected, 300);
}

#[test]
fn trl_pairs_in_csv_with_message_lists_and_implicit_prompts() {
    let mut t = TestHome::new();
    let quote = |v: serde_json::Value| format!("\"{}\"", v.to_string().replace('"', "\"\""));
    let messages = |pairs: &[(&str, &str)]| {
        serde_json::Value::Array(
            pairs
                .iter()
                .map(|(role, content)| serde_json::json!({"role": role, "content": content}))
                .collect(),
        )
    };
    let prompt = messages(&[("user", "hi"), ("assistant", "hello"), ("user", "2+2?")]);
    let file = t.file(
        "trl.csv",
        format!(
            "prompt,chosen,rejected\n{},{},{}\nplain question,plain yes,plain no\n",
            quote(prompt),
            quote(messages(&[("assistant", "four")])),
            quote(messages(&[("assistant", "five")])),
        ),
    );
    let info = t.import("trl", &file).unwrap();
    assert_eq!(info.format, "preference (trl) (csv)");
    assert_eq!(
        (info.train.rows, info.train.statistics.conversations),
        (3, 2)
    );
    let rows = t.store.sample("trl", Split::Train, 5).unwrap();
    assert_eq!(
        (rows[0].prompt.as_str(), rows[0].answer.as_str()),
        ("hi", "hello")
    );
    assert_eq!(
        (rows[1].answer.as_str(), rows[1].rejected.as_deref()),
        ("four", Some("five"))
    );
    assert_eq!(rows[2].rejected.as_deref(), Some("plain no"));

    let conversation = |answer: &str| {
        messages(&[
            ("user", "hi"),
            ("assistant", "hello"),
            ("user", "2+2?"),
            ("assistant", answer),
        ])
    };
    let line =
        serde_json::json!({"chosen": conversation("four"), "rejected": conversation("five")});
    let file = t.file("implicit.jsonl", format!("{line}\n"));
    let info = t.import("implicit", &file).unwrap();
    assert_eq!(info.format, "preference (trl) (jsonl)");
    let rows = t.store.sample("implicit", Split::Train, 5).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[1].prompt.as_str(),
            rows[1].answer.as_str(),
            rows[1].rejected.as_deref()
        ),
        ("2+2?", "four", Some("five"))
    );

    // Conversations whose chosen and rejected share no start have no prompt.
    let other = messages(&[("user", "bye"), ("assistant", "five")]);
    let bad = serde_json::json!({"chosen": conversation("four"), "rejected": other});
    let file = t.file("bad.jsonl", format!("{line}\n{bad}\n"));
    let err = t.import("bad", &file).unwrap_err().to_string();
    assert!(
        err.contains("bad.jsonl`, line 2") && err.contains("share no prompt"),
        "{err}"
    );
    assert_eq!(t.dataset_entries(), ["implicit", "trl"]);
}

/// Flat pair columns in Parquet: instruction, input, chosen_response, rejected_response.
fn write_pair_parquet(path: &std::path::Path) {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let schema = parquet::schema::parser::parse_message_type(
        "message schema {
            REQUIRED BYTE_ARRAY instruction (UTF8);
            REQUIRED BYTE_ARRAY input (UTF8);
            REQUIRED BYTE_ARRAY chosen_response (UTF8);
            REQUIRED BYTE_ARRAY rejected_response (UTF8);
        }",
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let props = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    for texts in [
        ["Add", "Greet"],
        ["1 and 2", ""],
        ["3", "Hello there"],
        ["4", "Go"],
    ] {
        let mut col = group.next_column().unwrap().unwrap();
        let values: Vec<ByteArray> = texts.iter().map(|t| ByteArray::from(*t)).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&values, None, None)
            .unwrap();
        col.close().unwrap();
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn flat_pair_columns_in_csv_and_parquet_merge_and_refuse_single_answers() {
    let mut t = TestHome::new();
    let path = t.dir.path().join("pairs.parquet");
    write_pair_parquet(&path);
    let info = t.import("flat", &path).unwrap();
    assert_eq!(info.format, "preference (flat) (parquet)");
    let rows = t.store.sample("flat", Split::Train, 5).unwrap();
    assert_eq!(
        (
            rows[0].prompt.as_str(),
            rows[0].answer.as_str(),
            rows[0].rejected.as_deref()
        ),
        ("Add\n\n1 and 2", "3", Some("4"))
    );
    assert_eq!(rows[1].prompt, "Greet");

    // A chained CSV: the first turn is history without a rejected answer.
    let more = t.file(
        "more.csv",
        "id,parent_id,prompt,chosen,rejected\nm1,,hi,hello,\nm2,m1,and now,now this,not that\n",
    );
    let info = t
        .store
        .merge_dataset("flat", &more, &Mapping::default(), Split::Train)
        .unwrap();
    assert_eq!(
        info.format,
        "preference (flat) (parquet), preference (flat) (csv)"
    );
    let stats = &info.train.statistics;
    assert_eq!((stats.rows, stats.conversations), (4, 3));
    let pairs = stats.preference.as_ref().unwrap();
    assert_eq!((pairs.rows, pairs.rejected_words.max), (3, 2));
    let rows = t.store.sample("flat", Split::Train, 5).unwrap();
    assert_eq!(rows[3].parent_id.as_deref(), Some("m1"));
    assert_eq!(rows[0].rejected.as_deref(), Some("4"));

    // Single answers do not join pairs; the dataset stays as it was.
    let single = t.file("single.csv", "prompt,answer\nq,a\n");
    let err = t
        .store
        .merge_dataset("flat", &single, &Mapping::default(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("single.csv") && err.contains("single answers"),
        "{err}"
    );
    assert_eq!(t.store.dataset("flat").unwrap().train.rows, 4);
    assert_eq!(t.dataset_entries(), ["flat"]);
}

#[test]
fn older_statistics_without_pairs_still_read() {
    let mut t = TestHome::new();
    let file = t.file("a.csv", "prompt,answer\nq,a\n");
    let info = t.import("old", &file).unwrap();
    assert!(!info.is_preference());
    assert_eq!(info.answer_column(), "answer");
    let json = serde_json::to_value(&info).unwrap();
    assert!(json["train"]["statistics"].get("preference").is_none());
    let back: DatasetInfo = serde_json::from_value(json).unwrap();
    assert_eq!(back, info);
}
