//! Padding, the resumable batch order, packing and the saved first batch.

use ferrotune_data::{
    collate, collate_packed, pack, pad_token_id, prepare, save_first_batch, BatchDump,
    BatchSampler, DatasetSettings, PadOptions, PaddingSide, Position, Sample, IGNORE_INDEX,
};

use crate::common::{decode, settings, tokenizer, write};

/// Samples of increasing length (answers of 1..=n words).
fn samples(n: usize) -> (Vec<Sample>, DatasetSettings) {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("instruction,input,output\n");
    for k in 1..=n {
        csv.push_str(&format!("q{k},,{}\n", vec!["word"; k].join(" ")));
    }
    let path = write(dir.path(), "t.csv", csv);
    let s = settings(&path);
    let data = prepare(&s, &tokenizer("qwen2_tied")).unwrap();
    (data.train, s)
}

fn opts(quantile: f64, max_length: usize) -> PadOptions {
    PadOptions {
        pad_id: 0,
        max_length,
        padding_quantile: quantile,
        side: PaddingSide::Right,
    }
}

#[test]
fn pads_to_the_longest_sample_on_the_right() {
    let (samples, s) = samples(3);
    let tok = tokenizer("qwen2_tied");
    let options = PadOptions::eval(&s, &tok).unwrap();
    assert_eq!(options.pad_id, pad_token_id(&tok).unwrap());
    assert_eq!(options.pad_id, tok.token_id("<|endoftext|>").unwrap());
    let batch = collate(&samples, &[0, 2], &options);
    let (short, long) = (&samples[0], &samples[2]);
    assert_eq!(batch.seq_len(), long.input_ids.len());
    assert_eq!(batch.sample_indices, vec![vec![0], vec![2]]);
    let n = short.input_ids.len();
    assert_eq!(batch.input_ids[0][..n], short.input_ids[..]);
    assert!(batch.input_ids[0][n..].iter().all(|&t| t == options.pad_id));
    assert_eq!(batch.attention_mask[0].iter().sum::<u32>() as usize, n);
    assert!(batch.labels[0][n..].iter().all(|&l| l == IGNORE_INDEX));
    assert_eq!(
        batch.position_ids[0][..n],
        (0..n as u32).collect::<Vec<_>>()[..]
    );
    assert_eq!(batch.sequence_ids[0][n - 1..n + 1], [1, 0]);
    assert_eq!(batch.input_ids[1], long.input_ids);
    assert_eq!(
        batch.label_count(),
        short.label_count() + long.label_count()
    );

    let left = collate(
        &samples,
        &[0, 2],
        &PadOptions {
            side: PaddingSide::Left,
            ..options
        },
    );
    let pad = left.seq_len() - n;
    assert_eq!(left.input_ids[0][pad..], short.input_ids[..]);
    assert_eq!(left.position_ids[0][pad], 0);
}

#[test]
fn padding_quantile_cuts_longer_samples_from_the_left() {
    let (samples, _) = samples(5);
    let lengths: Vec<usize> = samples.iter().map(|s| s.input_ids.len()).collect();
    assert!(lengths.windows(2).all(|w| w[0] < w[1]), "{lengths:?}");
    let batch = collate(&samples, &[0, 1, 2, 3, 4], &opts(0.5, 512));
    // The median of five increasing lengths is the third.
    assert_eq!(batch.seq_len(), lengths[2]);
    let longest = &samples[4];
    let n = longest.input_ids.len();
    assert_eq!(batch.input_ids[4][..], longest.input_ids[n - lengths[2]..]);
    assert_eq!(batch.labels[4][..], longest.labels[n - lengths[2]..]);

    let fixed = collate(&samples, &[0, 1], &opts(0.0, 64));
    assert_eq!(fixed.seq_len(), 64);
    assert_eq!(
        ferrotune_data::batch::padded_length(&[10, 20], &opts(0.5, 64)),
        15
    );
    assert_eq!(
        ferrotune_data::batch::padded_length(&[10, 21], &opts(0.5, 64)),
        16
    );
}

#[test]
fn batch_order_is_a_function_of_seed_and_epoch_and_resumes_exactly() {
    let sampler = BatchSampler::new(10, 3, 7);
    assert_eq!(sampler.batches_per_epoch(), 4);
    let first_epoch: Vec<Vec<usize>> = sampler
        .iter_from(Position::default())
        .take(4)
        .map(|(_, b)| b)
        .collect();
    let mut seen: Vec<usize> = first_epoch.concat();
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(first_epoch[3].len(), 1);
    assert_ne!(sampler.epoch_order(0), sampler.epoch_order(1));
    assert_eq!(
        sampler.epoch_order(1),
        BatchSampler::new(10, 3, 7).epoch_order(1)
    );
    assert_ne!(
        sampler.epoch_order(0),
        BatchSampler::new(10, 3, 8).epoch_order(0)
    );

    let uninterrupted: Vec<_> = sampler.iter_from(Position::default()).take(11).collect();
    let resume_at = uninterrupted[6].0;
    assert_eq!(resume_at, Position { epoch: 1, step: 2 });
    let resumed: Vec<_> = sampler.iter_from(resume_at).take(5).collect();
    assert_eq!(resumed[..], uninterrupted[6..]);
    assert_eq!(sampler.batch(resume_at), Some(uninterrupted[6].1.clone()));
    // A step past the end of an epoch rolls over to the next epoch.
    let rolled = sampler
        .iter_from(Position { epoch: 0, step: 6 })
        .next()
        .unwrap();
    assert_eq!(rolled, uninterrupted[6]);

    let dropping = BatchSampler {
        drop_last: true,
        ..BatchSampler::new(10, 3, 7)
    };
    assert_eq!(dropping.batches_per_epoch(), 3);
    let tiny = BatchSampler {
        drop_last: true,
        ..BatchSampler::new(2, 3, 7)
    };
    assert_eq!(tiny.batches_per_epoch(), 1, "the only batch is kept");
    assert_eq!(
        BatchSampler::new(0, 3, 7)
            .iter_from(Position::default())
            .next(),
        None
    );
}

#[test]
fn packing_keeps_sample_boundaries() {
    let (samples, _) = samples(6);
    let lengths: Vec<usize> = samples.iter().map(|s| s.input_ids.len()).collect();
    let max = lengths[5] + lengths[0] + 2;
    let rows = pack(&lengths, max);
    let mut all: Vec<usize> = rows.concat();
    all.sort_unstable();
    assert_eq!(all, (0..6).collect::<Vec<_>>());
    assert!(rows.len() < 6);
    for row in &rows {
        assert!(row.iter().map(|&i| lengths[i]).sum::<usize>() <= max);
    }
    let row_indices: Vec<usize> = (0..rows.len()).collect();
    let batch = collate_packed(&samples, &rows, &row_indices, &opts(1.0, max));
    for (r, row) in rows.iter().enumerate() {
        let mut at = 0;
        for (k, &i) in row.iter().enumerate() {
            let n = lengths[i];
            assert_eq!(batch.input_ids[r][at..at + n], samples[i].input_ids[..]);
            assert_eq!(
                batch.position_ids[r][at..at + n],
                (0..n as u32).collect::<Vec<_>>()[..]
            );
            assert!(batch.sequence_ids[r][at..at + n]
                .iter()
                .all(|&q| q == k as u32 + 1));
            assert_eq!(
                batch.labels[r][at], IGNORE_INDEX,
                "no label across a boundary"
            );
            assert_eq!(batch.labels[r][at + 1..at + n], samples[i].labels[1..]);
            at += n;
        }
        assert!(batch.attention_mask[r][at..].iter().all(|&a| a == 0));
        assert!(batch.sequence_ids[r][at..].iter().all(|&q| q == 0));
    }
    assert_eq!(batch.sample_indices, rows);
}

#[test]
fn the_first_batch_is_saved_with_masked_segments() {
    let (samples, s) = samples(2);
    let tok = tokenizer("qwen2_tied");
    let batch = collate(&samples, &[1, 0], &PadOptions::train(&s, &tok).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("first_batch.json");
    save_first_batch(&batch, &tok, &path).unwrap();
    let dump: BatchDump = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(dump.rows.len(), 2);
    let short = &dump.rows[1];
    assert_eq!(short.input_ids, batch.input_ids[1]);
    assert_eq!(short.padding, batch.seq_len() - samples[0].input_ids.len());
    let texts: Vec<(&str, bool)> = short
        .segments
        .iter()
        .map(|g| (g.text.as_str(), g.masked))
        .collect();
    assert_eq!(
        texts,
        [
            ("<|prompt|>q1<|im_end|><|answer|>", true),
            ("word<|im_end|>", false)
        ]
    );
    let joined: String = dump.rows[0]
        .segments
        .iter()
        .map(|g| g.text.as_str())
        .collect();
    assert_eq!(joined, decode(&tok, &samples[1].input_ids));
}
