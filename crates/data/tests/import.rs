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
        writeln!(out, "{}", serde_json::to_string(&row.record()).unwrap()).unwrap();
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

/// Converts `text` (a file called `name`) and prepares its canonical table as DPO does (the DPO column names,
/// only conversation ends as samples); returns the decoded chosen and rejected sample of each pair and the
/// labelled (answer) text of each.
#[allow(clippy::result_large_err)]
fn pairs(name: &str, text: &str) -> Vec<[String; 4]> {
    let dir = tempfile::tempdir().unwrap();
    let source = write(dir.path(), name, text);
    let table = dir.path().join("train.jsonl");
    let mut out = std::fs::File::create(&table).unwrap();
    let mut converter = Converter::new();
    let mut sink = |row: &CanonicalRow| {
        writeln!(out, "{}", serde_json::to_string(&row.record()).unwrap()).unwrap();
        Ok(())
    };
    converter
        .add_file(&source, &Mapping::default(), &mut sink)
        .unwrap();
    let stats = converter.finish().unwrap();
    drop(out);
    assert_eq!(
        ferrotune_data::read_columns(&table).unwrap(),
        ferrotune_data::import::PREFERENCE_COLUMNS
    );

    let mut s = settings(&table);
    s.prompt_column = vec!["prompt".into()];
    s.answer_column = "chosen_response".into();
    s.rejected_answer_column = Some("rejected_response".into());
    s.system_column = Some("system".into());
    s.parent_id_column = Some("parent_id".into());
    s.id_column = Some("id".into());
    s.limit_chained_samples = true;
    let tok = tokenizer("qwen2_tied");
    let data = prepare(&s, &tok).unwrap();
    let rejected = data.rejected.expect("pairs");
    assert_eq!(data.train.len() as u64, stats.preference.unwrap().rows);
    data.train
        .iter()
        .zip(&rejected.train)
        .map(|(c, r)| {
            [
                decode(&tok, &c.input_ids),
                labelled(&tok, c),
                decode(&tok, &r.input_ids),
                labelled(&tok, r),
            ]
        })
        .collect()
}

/// The pair of a two-turn conversation: both sides hold the first turn as history; the chosen side ends with the
/// chosen answer, the rejected side with the rejected one.
fn assert_two_turn_pair(pair: &[String; 4]) {
    let [chosen, chosen_labels, rejected, rejected_labels] = pair;
    for text in [chosen, rejected] {
        for part in ["Hi", "Hello", "What is 2+2?"] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
    }
    assert!(
        chosen.contains("Four.") && !chosen.contains("Five."),
        "{chosen}"
    );
    assert!(
        rejected.contains("Five.") && !rejected.contains("Four."),
        "{rejected}"
    );
    assert!(chosen_labels.contains("Four."), "{chosen_labels}");
    assert!(rejected_labels.contains("Five."), "{rejected_labels}");
    assert!(
        !rejected_labels.contains("What is"),
        "prompts are masked: {rejected_labels}"
    );
}

#[test]
fn llamafactory_pairs_train_as_dpo_pairs_with_history() {
    let file = r#"[
        {"conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}, {"from": "human", "value": "What is 2+2?"}],
         "chosen": {"from": "gpt", "value": "Four."}, "rejected": {"from": "gpt", "value": "Five."}},
        {"conversations": [{"from": "human", "value": "Capital of France?"}], "chosen": "Paris.", "rejected": "Lyon."}
    ]"#;
    let pairs = pairs("dpo.json", file);
    assert_eq!(pairs.len(), 2);
    assert_two_turn_pair(&pairs[0]);
    assert!(pairs[0][0].contains("Be kind."), "{}", pairs[0][0]);
    assert!(pairs[1][3].contains("Lyon."), "{}", pairs[1][3]);
}

#[test]
fn trl_conversational_pairs_with_a_prompt_or_an_implicit_one() {
    let explicit = serde_json::json!({
        "prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "What is 2+2?"}],
        "chosen": [{"role": "assistant", "content": "Four."}],
        "rejected": [{"role": "assistant", "content": "Five."}],
    });
    let standard = serde_json::json!({"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."});
    let pairs_of = pairs("trl.jsonl", &format!("{explicit}\n{standard}\n"));
    assert_eq!(pairs_of.len(), 2);
    assert_two_turn_pair(&pairs_of[0]);

    let conversation = |answer: &str| serde_json::json!([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": answer}]);
    let implicit =
        serde_json::json!({"chosen": conversation("Four."), "rejected": conversation("Five.")});
    let pairs_of = pairs("implicit.jsonl", &format!("{implicit}\n"));
    assert_eq!(pairs_of.len(), 1);
    assert_two_turn_pair(&pairs_of[0]);
}

#[test]
fn flat_pair_columns_chain_by_parent_id() {
    let csv = "id,parent_id,instruction,input,chosen_response,rejected_response\n\
               1,,Hi,,Hello,\n\
               2,1,What is 2+2?,Answer in words.,Four.,Five.\n\
               3,,Name a color.,,Blue.,Loud.\n";
    let pairs = pairs("flat.csv", csv);
    assert_eq!(pairs.len(), 2);
    assert_two_turn_pair(&pairs[0]);
    // `instruction` and `input` are joined into the prompt.
    assert!(
        pairs[0][2].contains("What is 2+2?\n\nAnswer in words."),
        "{}",
        pairs[0][2]
    );
    assert!(pairs[1][2].contains("Loud."), "{}", pairs[1][2]);
}
