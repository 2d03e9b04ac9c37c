//! The checks that run before tokenization: columns, answers, ids, parents.

use ferrotune_data::{prepare, Error};

use crate::common::{settings, tokenizer, write};

#[test]
fn missing_answer_column_lists_columns_and_suggests() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "train.csv",
        "instruction,input,outputs\na,b,c\n",
    );
    let err = prepare(&settings(&path), &tokenizer("qwen2_tied")).unwrap_err();
    assert!(
        matches!(&err, Error::MissingColumn { column, .. } if column == "output"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.starts_with("dataset `"), "{msg}");
    assert!(msg.contains("train.csv` has no column `output`"), "{msg}");
    assert!(msg.contains("`instruction`, `input`, `outputs`"), "{msg}");
    assert!(msg.contains("did you mean `outputs`?"), "{msg}");
    assert!(msg.contains("set `dataset.answer_column`"), "{msg}");
}

#[test]
fn missing_prompt_column_names_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "train.csv", "question,output\na,b\n");
    let msg = prepare(&settings(&path), &tokenizer("qwen2_tied"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no column `instruction`") && msg.contains("dataset.prompt_column"),
        "{msg}"
    );
}

#[test]
fn the_default_system_column_is_optional_but_a_named_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "train.csv",
        "instruction,input,output,sys\na,,b,s\n",
    );
    let tok = tokenizer("qwen2_tied");
    prepare(&settings(&path), &tok).unwrap();
    let named = ferrotune_data::DatasetSettings {
        system_column: Some("system_prompt".into()),
        ..settings(&path)
    };
    let msg = prepare(&named, &tok).unwrap_err().to_string();
    assert!(
        msg.contains("no column `system_prompt`") && msg.contains("dataset.system_column"),
        "{msg}"
    );
}

#[test]
fn all_answers_empty_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "train.csv",
        "instruction,input,output\na,,\nb,,\n",
    );
    let err = prepare(&settings(&path), &tokenizer("qwen2_tied")).unwrap_err();
    assert!(
        matches!(&err, Error::EmptyAnswers { column, .. } if column == "output"),
        "{err:?}"
    );
    assert!(err.to_string().contains("dataset.answer_column"), "{err}");
}

fn chained(dir: &std::path::Path, rows: &str) -> ferrotune_data::DatasetSettings {
    let path = write(
        dir,
        "chat.csv",
        format!("id,parent_id,instruction,output\n{rows}"),
    );
    ferrotune_data::DatasetSettings {
        prompt_column: vec!["instruction".into()],
        parent_id_column: Some("parent_id".into()),
        id_column: Some("id".into()),
        ..settings(&path)
    }
}

#[test]
fn duplicate_ids_name_the_id_and_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    let s = chained(dir.path(), "a,,q,r\nb,a,q,r\na,,q,r\n");
    let err = prepare(&s, &tokenizer("qwen2_tied")).unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateId { id, .. } if id == "a"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("line 2") && msg.contains("line 4") && msg.contains("column `id`"),
        "{msg}"
    );
}

#[test]
fn a_parent_that_is_not_an_id_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let s = chained(dir.path(), "a,,q,r\nb,zz,q,r\n");
    let err = prepare(&s, &tokenizer("qwen2_tied")).unwrap_err();
    assert!(
        matches!(&err, Error::MissingParent { parent, .. } if parent == "zz"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("line 3") && msg.contains("`parent_id`") && msg.contains("help:"),
        "{msg}"
    );
}

#[test]
fn parent_cycles_name_an_id_on_the_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let s = chained(dir.path(), "a,,q,r\nb,c,q,r\nc,d,q,r\nd,b,q,r\n");
    let err = prepare(&s, &tokenizer("qwen2_tied")).unwrap_err();
    match &err {
        Error::ParentCycle { id, .. } => assert!(["b", "c", "d"].contains(&id.as_str()), "{id}"),
        other => panic!("expected a cycle error, got {other:?}"),
    }
    let self_parent = chained(dir.path(), "a,a,q,r\nb,,q,r\n");
    let err = prepare(&self_parent, &tokenizer("qwen2_tied")).unwrap_err();
    assert!(
        matches!(&err, Error::ParentCycle { id, .. } if id == "a"),
        "{err:?}"
    );
}

#[test]
fn a_parent_column_without_an_id_column_asks_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "chat.csv",
        "key,parent_id,instruction,output\na,,q,r\n",
    );
    let s = ferrotune_data::DatasetSettings {
        prompt_column: vec!["instruction".into()],
        parent_id_column: Some("parent_id".into()),
        ..settings(&path)
    };
    let msg = prepare(&s, &tokenizer("qwen2_tied"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no column `id`") && msg.contains("dataset.id_column"),
        "{msg}"
    );
}

#[test]
fn an_empty_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "train.csv", "instruction,input,output\n");
    let err = prepare(&settings(&path), &tokenizer("qwen2_tied")).unwrap_err();
    assert!(matches!(err, Error::EmptyDataset { .. }), "{err:?}");
}

#[test]
fn r20_an_unused_parent_id_column_is_named_in_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::common::write(
        dir.path(),
        "chat.csv",
        "id,parent_id,instruction,input,output\n1,,hi,,hello\n2,1,how are you,,fine\n",
    );
    let s = ferrotune_data::DatasetSettings {
        system_column: None,
        ..crate::common::settings(&path)
    };
    let data = ferrotune_data::prepare(&s, &crate::common::tokenizer("qwen2_tied")).unwrap();
    assert!(
        data.stats
            .warnings
            .iter()
            .any(|w| w.contains("`parent_id`") && w.contains("dataset.parent_id_column")),
        "{:?}",
        data.stats.warnings
    );
}
