//! Formatting with the backbone's chat template (ChatML fixtures) and locating the answer spans.

use std::path::Path;

use ferrotune_data::{prepare, DatasetSettings, Error, Message, TextTokenizer};

use crate::common::{alpaca_csv, decode, labelled, settings, tokenizer, write};

fn with_template(path: &Path) -> DatasetSettings {
    DatasetSettings {
        use_chat_template: true,
        ..settings(path)
    }
}

fn render(tok: &TextTokenizer, messages: &[Message], generation_prompt: bool) -> String {
    tok.chat_template()
        .unwrap()
        .render(messages, generation_prompt)
        .unwrap()
}

#[test]
fn chatml_answer_span_is_the_content_and_im_end() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer("qwen2_tied");
    let data = prepare(&with_template(&alpaca_csv(dir.path())), &tok).unwrap();
    let sample = &data.train[0];
    let user = [Message::new("user", "Name a color.")];
    let full = [user[0].clone(), Message::new("assistant", "Blue.")];
    assert_eq!(decode(&tok, &sample.input_ids), render(&tok, &full, false));
    assert!(decode(&tok, &sample.input_ids).ends_with("<|im_start|>assistant\nBlue.<|im_end|>\n"));
    assert_eq!(labelled(&tok, sample), "Blue.<|im_end|>");
    assert_eq!(sample.prompt_text, render(&tok, &user, true));
    assert_eq!(
        decode(&tok, &sample.input_ids[..sample.prompt_len]),
        sample.prompt_text
    );
    assert_eq!(sample.answer_text, "Blue.");
    // The second row joins instruction and input into one user message.
    let joined = [
        Message::new("user", "Add the numbers.\n\n2 and 3"),
        Message::new("assistant", "5"),
    ];
    assert_eq!(
        decode(&tok, &data.train[1].input_ids),
        render(&tok, &joined, false)
    );
}

#[test]
fn chained_turns_label_every_assistant_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "chat.csv",
        "id,parent_id,system,instruction,output\nc1,,Be kind.,Hi,Hello\nc2,c1,,Bye,Ciao\n",
    );
    let tok = tokenizer("qwen2_tied");
    let s = DatasetSettings {
        prompt_column: vec!["instruction".into()],
        parent_id_column: Some("parent_id".into()),
        ..with_template(&path)
    };
    let data = prepare(&s, &tok).unwrap();
    let messages = [
        Message::new("system", "Be kind."),
        Message::new("user", "Hi"),
        Message::new("assistant", "Hello"),
        Message::new("user", "Bye"),
        Message::new("assistant", "Ciao"),
    ];
    let last = &data.train[1];
    assert_eq!(
        decode(&tok, &last.input_ids),
        render(&tok, &messages, false)
    );
    assert_eq!(labelled(&tok, last), "Hello<|im_end|>|Ciao<|im_end|>");
    assert_eq!(last.prompt_text, render(&tok, &messages[..4], true));
    let only_last = DatasetSettings {
        only_last_answer: true,
        ..s
    };
    assert_eq!(
        labelled(&tok, &prepare(&only_last, &tok).unwrap().train[1]),
        "Ciao<|im_end|>"
    );
}

#[test]
fn the_bos_is_added_when_the_template_does_not_render_it() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer("llama3_rope");
    let sample = prepare(&with_template(&alpaca_csv(dir.path())), &tok)
        .unwrap()
        .train
        .remove(0);
    let full = [
        Message::new("user", "Name a color."),
        Message::new("assistant", "Blue."),
    ];
    assert_eq!(sample.bos_len, 1);
    assert_eq!(
        decode(&tok, &sample.input_ids),
        format!("<|endoftext|>{}", render(&tok, &full, false))
    );
    assert_eq!(labelled(&tok, &sample), "Blue.<|im_end|>");
}

#[test]
fn a_template_that_rewrites_earlier_text_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = ferrotune_test_support::model_fixture("qwen2_tied");
    let backbone = dir.path().join("backbone");
    std::fs::create_dir(&backbone).unwrap();
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture.join(file), backbone.join(file)).unwrap();
    }
    write(
        &backbone,
        "chat_template.jinja",
        "{{ messages[-1]['content'] }}",
    );
    let tok = TextTokenizer::from_dir(&backbone).unwrap();
    let err = prepare(&with_template(&alpaca_csv(dir.path())), &tok).unwrap_err();
    assert!(
        matches!(err, Error::ChatTemplateNotIncremental { turn: 1, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("dataset.use_chat_template"),
        "{err}"
    );
}
