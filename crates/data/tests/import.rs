//! The canonical table an import writes is a training dataframe: `prepare` reads it with the canonical columns
//! and chains the turns of a ShareGPT conversation.

use std::io::Write;

use ferrotune_data::import::{CanonicalRow, Converter, Mapping};
use ferrotune_data::prepare;

use crate::common::{decode, labelled, settings, tokenizer, write};

#[test]
// The sink returns the crate's error type, which clippy finds large.
#[allow(clippy::result_large_err)]
fn a_converted_sharegpt_file_trains_as_chained_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let source = write(
        dir.path(),
        "chat.jsonl",
        r#"{"conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}, {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Ciao"}]}"#,
    );
    let table = dir.path().join("train.jsonl");
    let mut out = std::fs::File::create(&table).unwrap();
    let mut converter = Converter::new();
    let mut sink = |row: &CanonicalRow| {
        writeln!(out, "{}", serde_json::to_string(row).unwrap()).unwrap();
        Ok(())
    };
    converter
        .add_file(&source, &Mapping::default(), &mut sink)
        .unwrap();
    assert_eq!(converter.finish().unwrap().conversations, 1);
    drop(out);

    let mut s = settings(&table);
    s.prompt_column = vec!["prompt".into()];
    s.answer_column = "answer".into();
    s.system_column = Some("system".into());
    s.parent_id_column = Some("parent_id".into());
    s.id_column = Some("id".into());
    let tok = tokenizer("qwen2_tied");
    let data = prepare(&s, &tok).unwrap();
    // Every turn is a sample whose history is its chain; the last one holds the whole conversation.
    assert_eq!(data.train.len(), 2);
    let last = &data.train[1];
    let text = decode(&tok, &last.input_ids);
    for part in ["Be kind.", "Hi", "Hello", "Bye", "Ciao"] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    let answers = labelled(&tok, last);
    assert!(
        answers.contains("Hello") && answers.contains("Ciao"),
        "{answers}"
    );
    assert!(!answers.contains("Bye"), "prompts are masked: {answers}");
}
