//! Sample packing: a packed row (block-diagonal causal attention, positions restarting per sample) gives the
//! same losses as the samples run separately — no cross-contamination.

use std::path::Path;

use candle_core::{DType, Device};
use ferrotune_data::batch::{collate, collate_packed, pack, PadOptions, PaddingSide};
use ferrotune_data::Sample;
use ferrotune_model::{adapter, Backbone, ForwardOptions, Packing};
use ferrotune_train::loss::{batch_loss, LossKind};

fn sample(ids: Vec<u32>, masked: usize) -> Sample {
    let labels = ids
        .iter()
        .enumerate()
        .map(|(i, &t)| if i < masked { -100 } else { t as i64 })
        .collect();
    Sample {
        input_ids: ids,
        labels,
        prompt_len: masked,
        bos_len: 0,
        prompt_text: String::new(),
        answer_text: String::new(),
        conversation_id: String::new(),
        row: 0,
        truncated: false,
    }
}

#[test]
fn packed_rows_score_like_separate_samples() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/llama3_rope");
    let mut backbone = Backbone::load_folder(&base, DType::F32, &Device::Cpu).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora_step/adapter");
    adapter::load_peft(&mut backbone.model, &fixture).unwrap();
    let samples = vec![
        sample((10..22).collect(), 4),
        sample((50..57).collect(), 2),
        sample((100..120).collect(), 5),
        sample((200..205).collect(), 1),
    ];
    let pad = PadOptions {
        pad_id: 0,
        max_length: 32,
        padding_quantile: 1.0,
        side: PaddingSide::Right,
    };
    let (mut separate_nll, mut separate_tokens) = (0.0, 0);
    for i in 0..samples.len() {
        let b = collate(&samples, &[i], &pad);
        let out = batch_loss(
            &backbone.model,
            &b.input_ids,
            &b.labels,
            LossKind::TokenAveraged,
            &ForwardOptions::default(),
        )
        .unwrap();
        separate_nll += out.nll_sum;
        separate_tokens += out.tokens;
    }
    let lengths: Vec<usize> = samples.iter().map(|s| s.input_ids.len()).collect();
    let rows = pack(&lengths, 32);
    assert!(rows.len() < samples.len(), "something was packed: {rows:?}");
    let all: Vec<usize> = (0..rows.len()).collect();
    let b = collate_packed(&samples, &rows, &all, &pad);
    let options = ForwardOptions {
        packing: Some(Packing {
            position_ids: b.position_ids.clone(),
            sequence_ids: b.sequence_ids.clone(),
        }),
        ..Default::default()
    };
    let out = batch_loss(
        &backbone.model,
        &b.input_ids,
        &b.labels,
        LossKind::TokenAveraged,
        &options,
    )
    .unwrap();
    assert_eq!(out.tokens, separate_tokens);
    assert!(
        (out.nll_sum - separate_nll).abs() <= 1e-4 * separate_nll,
        "packed {} vs separate {separate_nll}",
        out.nll_sum
    );
    // Without the block-diagonal mask the samples would see each other: the loss changes.
    let leaky = batch_loss(
        &backbone.model,
        &b.input_ids,
        &b.labels,
        LossKind::TokenAveraged,
        &ForwardOptions::default(),
    )
    .unwrap();
    assert!(
        (leaky.nll_sum - separate_nll).abs() > 1e-3,
        "the test batch must be sensitive to packing"
    );
}
