//! Parent augmentations: per-epoch, seeded variants of chained training samples.

use ferrotune_data::prepare;

use crate::common::{settings, tokenizer, write};

fn chained_csv() -> String {
    let mut csv = String::from("id,parent_id,instruction,output\n");
    for c in 0..6 {
        for t in 0..3 {
            let parent = if t == 0 {
                String::new()
            } else {
                format!("c{c}t{}", t - 1)
            };
            csv.push_str(&format!(
                "c{c}t{t},{parent},question {c} {t},answer {c} {t}\n"
            ));
        }
    }
    csv
}

#[test]
fn skip_and_random_parents_vary_per_epoch_and_are_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "chat.csv", chained_csv());
    let tok = tokenizer("qwen2_tied");
    let mut s = settings(&path);
    s.system_column = None;
    s.prompt_column = vec!["instruction".into()];
    s.parent_id_column = Some("parent_id".into());
    s.id_column = Some("id".into());
    let plain = prepare(&s, &tok).unwrap();
    assert!(plain.train_epochs.is_none());

    s.skip_parent_probability = 0.5;
    s.random_parent_probability = 0.3;
    s.epochs = 3;
    let a = prepare(&s, &tok).unwrap();
    let b = prepare(&s, &tok).unwrap();
    let epochs = a.train_epochs.as_ref().expect("augmented epochs");
    assert_eq!(epochs.len(), 3);
    assert!(
        epochs.iter().all(|e| e.len() == a.train.len()),
        "same sample count every epoch"
    );
    let ids = |samples: &[ferrotune_data::Sample]| {
        samples
            .iter()
            .map(|x| x.input_ids.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&epochs[1]), ids(b.train_for_epoch(1)), "seeded");
    assert_ne!(ids(&epochs[0]), ids(&epochs[1]), "a fresh draw per epoch");
    assert_ne!(ids(&epochs[0]), ids(&a.train), "something was augmented");
    // The final turn (the trained answer) is always kept.
    for (v, orig) in epochs[2].iter().zip(&a.train) {
        assert_eq!(v.answer_text, orig.answer_text);
    }
    // Validation is never augmented.
    assert_eq!(ids(&a.validation), ids(&plain.validation));
}
