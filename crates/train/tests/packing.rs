//! Sample packing: a packed row (block-diagonal causal attention, positions restarting per sample) gives the
//! same losses as the samples run separately — no cross-contamination.

use std::path::Path;

use candle_core::{DType, Device};
use ferrotune_data::batch::{collate, collate_packed, pack, PadOptions, PaddingSide};
use ferrotune_data::Sample;
use ferrotune_model::{adapter, Backbone, ForwardOptions, Packing};
use ferrotune_test_support::model_fixture;
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

/// The tiny llama backbone with the adapter of the `lora_step` fixture.
fn backbone_with_adapter() -> Backbone {
    let mut backbone =
        Backbone::load_folder(&model_fixture("llama3_rope"), DType::F32, &Device::Cpu).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora_step/adapter");
    adapter::load_peft(&mut backbone.model, &fixture).unwrap();
    backbone
}

#[test]
fn packed_rows_score_like_separate_samples() {
    let backbone = backbone_with_adapter();
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

/// The adapters' gradients of `loss`, by variable order.
fn adapter_grads(model: &ferrotune_model::Llama, loss: &candle_core::Tensor) -> Vec<Vec<f32>> {
    let grads = loss.backward().unwrap();
    model
        .linears()
        .into_iter()
        .filter_map(|(_, _, l)| l.lora().cloned())
        .flat_map(|l| [l.a, l.b])
        .map(|v| {
            grads
                .get(v.as_tensor())
                .expect("every adapter gets a gradient")
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

/// The trainer's padding-free step — the batch's rows without padding, joined into one row of separate
/// samples (token-averaged loss) or taken one by one (sample-averaged) — has the padded batch's loss and
/// adapter gradients.
#[test]
fn padding_free_pieces_have_the_padded_batch_loss_and_gradients() {
    use ferrotune_train::loss::{batch_loss_normalized, concatenate, unpadded_rows, Normalization};
    let backbone = backbone_with_adapter();
    let model = &backbone.model;
    let samples = vec![
        sample((10..22).collect(), 4),
        sample((50..57).collect(), 2),
        sample((100..120).collect(), 5),
    ];
    let pad = PadOptions {
        pad_id: 0,
        max_length: 32,
        padding_quantile: 1.0,
        side: PaddingSide::Right,
    };
    let batch = collate(&samples, &[0, 1, 2], &pad);
    let rows = unpadded_rows(&batch.input_ids, &batch.labels, &batch.attention_mask);
    assert_eq!(
        rows.iter().map(|r| r.1.len()).collect::<Vec<_>>(),
        [12, 7, 20]
    );
    let options = ForwardOptions::default();
    for kind in [LossKind::TokenAveraged, LossKind::SampleAveraged] {
        let padded = batch_loss(model, &batch.input_ids, &batch.labels, kind, &options).unwrap();
        let padded_loss = padded.loss.to_scalar::<f32>().unwrap();
        let expected = adapter_grads(model, &padded.loss);
        let norm = Normalization::of(&batch.labels, kind).unwrap();
        let (loss, grads) = if kind == LossKind::TokenAveraged {
            let (ids, labels, packing) = concatenate(&rows);
            let joined = ForwardOptions {
                packing: Some(packing),
                ..Default::default()
            };
            let out = batch_loss_normalized(model, &[ids], &[labels], &norm, &joined).unwrap();
            (
                out.loss.to_scalar::<f32>().unwrap(),
                adapter_grads(model, &out.loss),
            )
        } else {
            let mut sum = 0.0;
            let mut grads: Vec<Vec<f32>> = Vec::new();
            for (_, ids, labels) in &rows {
                let out = batch_loss_normalized(
                    model,
                    std::slice::from_ref(ids),
                    std::slice::from_ref(labels),
                    &norm,
                    &options,
                )
                .unwrap();
                sum += out.loss.to_scalar::<f32>().unwrap();
                let g = adapter_grads(model, &out.loss);
                if grads.is_empty() {
                    grads = g;
                } else {
                    for (acc, g) in grads.iter_mut().zip(g) {
                        acc.iter_mut().zip(g).for_each(|(a, b)| *a += b);
                    }
                }
            }
            (sum, grads)
        };
        assert!(
            (loss - padded_loss).abs() <= 1e-5 * padded_loss,
            "{kind:?}: {loss} vs {padded_loss}"
        );
        for (ours, theirs) in grads.iter().zip(&expected) {
            for (a, b) in ours.iter().zip(theirs) {
                assert!(
                    (a - b).abs() <= 1e-5 + 1e-4 * b.abs(),
                    "{kind:?}: gradient {a} vs {b}"
                );
            }
        }
    }
}
