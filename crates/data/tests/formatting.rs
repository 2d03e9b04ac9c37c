//! The marker format, EOS flags, masking, chained conversations and truncation, checked on decoded text.

use ferrotune_data::{prepare, DatasetSettings, Error, ValidationStrategy, IGNORE_INDEX};

use crate::common::{alpaca_csv, decode, labelled, settings, tokenizer, write};

#[test]
fn alpaca_rows_join_instruction_and_input_and_skip_empty_input() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer("qwen2_tied");
    let data = prepare(&settings(&alpaca_csv(dir.path())), &tok).unwrap();
    let [a, b] = data.train.as_slice() else {
        panic!("two samples")
    };
    assert_eq!(
        decode(&tok, &a.input_ids),
        "<|prompt|>Name a color.<|im_end|><|answer|>Blue.<|im_end|>"
    );
    assert_eq!(
        decode(&tok, &b.input_ids),
        "<|prompt|>Add the numbers.\n\n2 and 3<|im_end|><|answer|>5<|im_end|>"
    );
    assert_eq!(a.prompt_text, "<|prompt|>Name a color.<|im_end|><|answer|>");
    assert_eq!(decode(&tok, &a.input_ids[..a.prompt_len]), a.prompt_text);
    assert_eq!(a.answer_text, "Blue.");
    assert_eq!(labelled(&tok, a), "Blue.<|im_end|>");
    assert_eq!(
        (a.row, a.conversation_id.as_str(), a.truncated),
        (0, "0", false)
    );
}

#[test]
fn eos_flags_and_escaped_markers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "t.csv",
        "system,instruction,input,output\nBe brief.,Hi,,Yo\n",
    );
    let tok = tokenizer("qwen2_tied");
    let s = |system: bool, prompt: bool, answer: bool| DatasetSettings {
        add_eos_token_to_system: system,
        add_eos_token_to_prompt: prompt,
        add_eos_token_to_answer: answer,
        ..settings(&path)
    };
    let text = |s: &DatasetSettings| decode(&tok, &prepare(s, &tok).unwrap().train[0].input_ids);
    assert_eq!(
        text(&s(true, true, true)),
        "<|system|>Be brief.<|im_end|><|prompt|>Hi<|im_end|><|answer|>Yo<|im_end|>"
    );
    assert_eq!(
        text(&s(false, false, false)),
        "<|system|>Be brief.<|prompt|>Hi<|answer|>Yo"
    );
    assert_eq!(
        text(&s(true, false, true)),
        "<|system|>Be brief.<|im_end|><|prompt|>Hi<|answer|>Yo<|im_end|>"
    );
    let custom = DatasetSettings {
        text_system_start: "".into(),
        text_prompt_start: "### Q:\\n".into(),
        text_answer_separator: "\\n### A:\\n".into(),
        ..s(false, false, true)
    };
    assert_eq!(text(&custom), "Be brief.### Q:\nHi\n### A:\nYo<|im_end|>");
}

#[test]
fn prompt_labels_are_masked_unless_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "t.csv",
        "system,instruction,input,output\nSys,Q,,A\n",
    );
    let tok = tokenizer("qwen2_tied");
    let masked = &prepare(&settings(&path), &tok).unwrap().train[0];
    let answer = masked.prompt_len;
    assert!(masked.labels[..answer].iter().all(|&l| l == IGNORE_INDEX));
    assert!(masked.labels[answer..].iter().all(|&l| l != IGNORE_INDEX));
    let unmasked = DatasetSettings {
        mask_prompt_labels: false,
        ..settings(&path)
    };
    let sample = &prepare(&unmasked, &tok).unwrap().train[0];
    let ids: Vec<i64> = sample.input_ids.iter().map(|&i| i64::from(i)).collect();
    assert_eq!(sample.labels, ids);
}

#[test]
fn the_post_processor_bos_starts_every_sample_and_is_masked() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer("llama3_rope");
    let sample = &prepare(&settings(&alpaca_csv(dir.path())), &tok)
        .unwrap()
        .train[0];
    assert_eq!(sample.input_ids[0], tok.token_id("<|endoftext|>").unwrap());
    assert_eq!((sample.labels[0], sample.bos_len), (IGNORE_INDEX, 1));
    assert_eq!(
        decode(&tok, &sample.input_ids),
        "<|endoftext|><|prompt|>Name a color.<|im_end|><|answer|>Blue.<|im_end|>"
    );
    assert_eq!(
        sample.prompt_text,
        "<|prompt|>Name a color.<|im_end|><|answer|>"
    );
}

fn chat_settings(dir: &std::path::Path) -> DatasetSettings {
    let path = write(
        dir,
        "chat.csv",
        "id,parent_id,system,instruction,output\n\
         c1,,Sys A,Hi,Hello\n\
         c2,c1,Sys B,How are you?,Fine\n\
         c3,c2,,Bye,Ciao\n\
         x1,,,Solo,Alone\n",
    );
    DatasetSettings {
        prompt_column: vec!["instruction".into()],
        parent_id_column: Some("parent_id".into()),
        id_column: Some("id".into()),
        ..settings(&path)
    }
}

const FULL_CHAIN: &str = "<|system|>Sys A<|im_end|><|prompt|>Hi<|im_end|><|answer|>Hello<|im_end|>\
<|prompt|>How are you?<|im_end|><|answer|>Fine<|im_end|><|prompt|>Bye<|im_end|><|answer|>Ciao<|im_end|>";

#[test]
fn every_row_is_a_sample_with_its_ancestors() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer("qwen2_tied");
    let data = prepare(&chat_settings(dir.path()), &tok).unwrap();
    assert_eq!(data.train.len(), 4);
    let ids: Vec<&str> = data
        .train
        .iter()
        .map(|s| s.conversation_id.as_str())
        .collect();
    assert_eq!(ids, ["c1", "c1", "c1", "x1"]);
    let third = &data.train[2];
    assert_eq!(decode(&tok, &third.input_ids), FULL_CHAIN);
    assert_eq!(
        labelled(&tok, third),
        "Hello<|im_end|>|Fine<|im_end|>|Ciao<|im_end|>"
    );
    assert_eq!(third.answer_text, "Ciao");
    assert!(third
        .prompt_text
        .ends_with("<|prompt|>Bye<|im_end|><|answer|>"));
    assert_eq!(
        decode(&tok, &third.input_ids[..third.prompt_len]),
        third.prompt_text
    );
    // The second turn's sample stops at its own answer and keeps the root's system.
    assert!(decode(&tok, &data.train[1].input_ids).ends_with("<|answer|>Fine<|im_end|>"));
    assert!(decode(&tok, &data.train[1].input_ids).starts_with("<|system|>Sys A<|im_end|>"));
    assert_eq!(
        decode(&tok, &data.train[3].input_ids),
        "<|prompt|>Solo<|im_end|><|answer|>Alone<|im_end|>"
    );
}

#[test]
fn only_last_answer_masks_earlier_answers() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer("qwen2_tied");
    let s = DatasetSettings {
        only_last_answer: true,
        ..chat_settings(dir.path())
    };
    let data = prepare(&s, &tok).unwrap();
    assert_eq!(labelled(&tok, &data.train[2]), "Ciao<|im_end|>");
}

#[test]
fn limit_chained_samples_keeps_only_conversation_ends() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer("qwen2_tied");
    let s = DatasetSettings {
        limit_chained_samples: true,
        ..chat_settings(dir.path())
    };
    let data = prepare(&s, &tok).unwrap();
    let rows: Vec<usize> = data.train.iter().map(|s| s.row).collect();
    assert_eq!(rows, [2, 3]);
    assert_eq!(decode(&tok, &data.train[0].input_ids), FULL_CHAIN);
}

fn long_prompt(dir: &std::path::Path, answer: &str) -> std::path::PathBuf {
    let prompt = "one two three four five six seven eight nine ten eleven twelve";
    write(
        dir,
        "long.csv",
        format!("instruction,input,output\n{prompt},,{answer}\n"),
    )
}

#[test]
fn truncation_cuts_the_oldest_tokens_and_keeps_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = long_prompt(dir.path(), "Short answer.");
    for fixture in ["qwen2_tied", "llama3_rope"] {
        let tok = tokenizer(fixture);
        let full = prepare(&settings(&path), &tok).unwrap().train.remove(0);
        let max = full.input_ids.len() - full.prompt_len + full.bos_len + 4;
        assert!(full.input_ids.len() > max);
        let s = DatasetSettings {
            max_length: max,
            ..settings(&path)
        };
        let cut = prepare(&s, &tok).unwrap().train.remove(0);
        assert!(cut.truncated && cut.input_ids.len() == max);
        let n = full.input_ids.len();
        let bos = full.bos_len;
        assert_eq!(
            cut.input_ids[..bos],
            full.input_ids[..bos],
            "{fixture}: the BOS stays"
        );
        assert_eq!(cut.input_ids[bos..], full.input_ids[n - (max - bos)..]);
        assert_eq!(labelled(&tok, &cut), "Short answer.<|im_end|>");
        assert_eq!(cut.input_ids.len() - cut.prompt_len, n - full.prompt_len);
    }
}

#[test]
fn an_answer_longer_than_max_length_keeps_its_first_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = long_prompt(dir.path(), "a very long answer that does not fit at all");
    let tok = tokenizer("qwen2_tied");
    let full = prepare(&settings(&path), &tok).unwrap().train.remove(0);
    let s = DatasetSettings {
        max_length: 5,
        ..settings(&path)
    };
    let cut = prepare(&s, &tok).unwrap().train.remove(0);
    assert_eq!(
        cut.input_ids,
        full.input_ids[full.prompt_len..full.prompt_len + 5]
    );
    assert_eq!(cut.prompt_len, 0);
    assert!(cut.labels.iter().all(|&l| l != IGNORE_INDEX));
}

#[test]
fn max_length_prompt_and_answer_cut_each_piece_like_h2o_before_max_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "t.csv",
        "system,instruction,input,output\nBe brief and to the point always.,one two three four five six seven eight,,alpha beta gamma delta epsilon zeta\n",
    );
    let tok = tokenizer("qwen2_tied");
    let eos = tok.token_id("<|im_end|>").unwrap();
    let enc = |t: &str| tok.encode(t, false).unwrap();
    let mut system = enc("<|system|>Be brief and to the point always.");
    system.push(eos);
    let mut prompt = enc("<|prompt|>one two three four five six seven eight");
    prompt.push(eos);
    prompt.extend(enc("<|answer|>"));
    let mut answer = enc("alpha beta gamma delta epsilon zeta");
    answer.push(eos);
    let (p, a) = (5, 3);
    assert!(system.len() > p && prompt.len() > p && answer.len() > a);
    let s = DatasetSettings {
        max_length_prompt: Some(p),
        max_length_answer: Some(a),
        ..settings(&path)
    };
    let cut = prepare(&s, &tok).unwrap().train.remove(0);
    // The system keeps its start, the prompt its end (the separator stays), the answer its start.
    let expected: Vec<u32> = [&system[..p], &prompt[prompt.len() - p..], &answer[..a]].concat();
    assert_eq!(cut.input_ids, expected);
    assert_eq!(cut.prompt_len, 2 * p);
    assert_eq!(labelled(&tok, &cut), decode(&tok, &answer[..a]));
    assert!(cut.truncated);
    // Limits the pieces fit in change nothing.
    let roomy = DatasetSettings {
        max_length_prompt: Some(100),
        max_length_answer: Some(100),
        ..settings(&path)
    };
    let full = prepare(&settings(&path), &tok).unwrap().train.remove(0);
    assert_eq!(prepare(&roomy, &tok).unwrap().train.remove(0), full);
    assert!(!full.truncated);
}

#[test]
fn no_trainable_label_is_an_error_naming_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "t.csv", "instruction,input,output\na,,x\nb,,\n");
    let tok = tokenizer("qwen2_tied");
    let mut errors = 0;
    for seed in 0..20 {
        let s = DatasetSettings {
            train_dataframe: path.clone(),
            validation_size: 0.5,
            add_eos_token_to_answer: false,
            seed,
            ..Default::default()
        };
        assert_eq!(s.validation_strategy, ValidationStrategy::Automatic);
        match prepare(&s, &tok) {
            Ok(data) => assert_eq!(data.train[0].answer_text, "x"),
            Err(err) => {
                assert!(
                    matches!(err, Error::NoTrainableLabels { samples: 1, .. }),
                    "{err:?}"
                );
                let msg = err.to_string();
                assert!(
                    msg.contains("dataset.add_eos_token_to_answer")
                        && msg.contains("dataset.max_length")
                );
                errors += 1;
            }
        }
    }
    assert!(errors > 0 && errors < 20, "{errors}");
}
