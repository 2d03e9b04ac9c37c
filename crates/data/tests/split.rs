//! The automatic validation split, the custom validation file and `data_sample`.

use std::collections::BTreeSet;

use ferrotune_data::{prepare, DatasetSettings, PreparedData, ValidationStrategy};

use crate::common::{tokenizer, write};

/// 30 three-turn conversations `k0..k29` (rows `k.0`, `k.1`, `k.2`).
fn conversations_csv(dir: &std::path::Path) -> std::path::PathBuf {
    let mut csv = String::from("id,parent_id,instruction,output\n");
    for k in 0..30 {
        csv.push_str(&format!("k{k}.0,,q{k},a{k}\n"));
        csv.push_str(&format!("k{k}.1,k{k}.0,q{k},a{k}\n"));
        csv.push_str(&format!("k{k}.2,k{k}.1,q{k},a{k}\n"));
    }
    write(dir, "conversations.csv", csv)
}

fn automatic(path: &std::path::Path, seed: u64) -> DatasetSettings {
    DatasetSettings {
        train_dataframe: path.to_path_buf(),
        validation_size: 0.2,
        prompt_column: vec!["instruction".into()],
        parent_id_column: Some("parent_id".into()),
        id_column: Some("id".into()),
        seed,
        ..Default::default()
    }
}

fn conversation_ids(samples: &[ferrotune_data::Sample]) -> BTreeSet<String> {
    samples.iter().map(|s| s.conversation_id.clone()).collect()
}

fn run(s: &DatasetSettings) -> PreparedData {
    prepare(s, &tokenizer("qwen2_tied")).unwrap()
}

#[test]
fn automatic_split_keeps_conversations_together_and_is_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let path = conversations_csv(dir.path());
    let data = run(&automatic(&path, 1));
    let (train, validation) = (
        conversation_ids(&data.train),
        conversation_ids(&data.validation),
    );
    assert_eq!((train.len(), validation.len()), (24, 6));
    assert!(train.is_disjoint(&validation));
    assert_eq!((data.train.len(), data.validation.len()), (72, 18));
    assert_eq!(
        (data.stats.train.rows, data.stats.validation.conversations),
        (72, 6)
    );

    assert_eq!(
        conversation_ids(&run(&automatic(&path, 1)).validation),
        validation
    );
    let other_seeds: Vec<_> = (2..6)
        .map(|seed| conversation_ids(&run(&automatic(&path, seed)).validation))
        .collect();
    assert!(other_seeds.iter().any(|v| *v != validation));
}

#[test]
fn data_sample_subsamples_conversations_of_the_chosen_sides() {
    let dir = tempfile::tempdir().unwrap();
    let path = conversations_csv(dir.path());
    let train_only = DatasetSettings {
        data_sample: 0.5,
        data_sample_choice: vec!["Train".into()],
        ..automatic(&path, 1)
    };
    let data = run(&train_only);
    assert_eq!(conversation_ids(&data.train).len(), 12);
    assert_eq!(data.train.len(), 36, "whole conversations are kept");
    assert_eq!(conversation_ids(&data.validation).len(), 6);
    assert_eq!(run(&train_only).train, data.train, "seeded");

    let both = DatasetSettings {
        data_sample: 0.5,
        ..automatic(&path, 1)
    };
    let data = run(&both);
    assert_eq!(conversation_ids(&data.train).len(), 12);
    // Validation has 6 conversations: H2O keeps at least 10 (here all 6).
    assert_eq!(conversation_ids(&data.validation).len(), 6);
}

#[test]
fn custom_validation_reads_the_validation_file() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(
        dir.path(),
        "train.csv",
        "instruction,input,output\na,,1\nb,,2\nc,,3\n",
    );
    let val = write(
        dir.path(),
        "val.jsonl",
        "{\"instruction\": \"v\", \"input\": null, \"output\": 9}\n",
    );
    let s = DatasetSettings {
        train_dataframe: train,
        validation_strategy: ValidationStrategy::Custom,
        validation_dataframe: Some(val),
        ..Default::default()
    };
    let data = run(&s);
    assert_eq!(data.train.len(), 3);
    assert_eq!(data.validation.len(), 1);
    assert_eq!(data.validation[0].answer_text, "9");
}

#[test]
fn a_single_conversation_cannot_be_split() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "one.csv", "instruction,input,output\na,,1\n");
    let s = DatasetSettings {
        train_dataframe: train,
        ..Default::default()
    };
    let msg = prepare(&s, &tokenizer("qwen2_tied"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("one.csv") && msg.contains("dataset.validation_strategy"),
        "{msg}"
    );
}
