//! Batched decoding (continuous batching): every row of one `decode_step`, each with its own cache, position and
//! adapter, gives the logits and greedy tokens that sequence gets decoded alone.

use candle_core::{DType, Device, Tensor};
use ferrotune_model::adapter::attach_random_lora;
use ferrotune_model::generation::sampling::argmax;
use ferrotune_model::lora::LoraSpec;
use ferrotune_model::{generate, AdapterWeights, Backbone, DecodeRow, GenerationConfig, Llama};
use ferrotune_test_support::model_fixture;

/// An adapter on every linear layer with non-zero A and B (seeded), detached for inference.
fn adapter(base: &Llama, seed: u64) -> AdapterWeights {
    let mut model = base.clone();
    attach_random_lora(&mut model, &spec(), seed, 0.05).unwrap();
    AdapterWeights::of(&model.for_inference())
}

fn spec() -> LoraSpec {
    LoraSpec::every_module(4, 8.0)
}

#[test]
fn one_batched_step_per_token_matches_each_sequence_decoded_alone() {
    for case in ["llama3_rope", "qwen2_tied"] {
        let backbone =
            Backbone::load_folder(&model_fixture(case), DType::F32, &Device::Cpu).unwrap();
        let base = backbone.model.for_inference();
        let (a, b) = (adapter(&base, 1), adapter(&base, 2));
        let vocab = base.vocab_size() as u32;
        // Prompts of different lengths; rows 1 and 3 share adapter `a` without being next to each other.
        let prompts: Vec<Vec<u32>> = [5usize, 9, 3, 7]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                (0..n)
                    .map(|j| ((i * 31 + j * 7 + 3) as u32) % vocab)
                    .collect()
            })
            .collect();
        let adapters = [None, Some(&a), Some(&b), Some(&a)];
        let new_tokens = 6;
        // Alone: the model with the row's adapter attached, greedy.
        let alone: Vec<Vec<u32>> = prompts
            .iter()
            .zip(adapters)
            .map(|(p, ad)| {
                let cfg = GenerationConfig {
                    max_new_tokens: new_tokens,
                    ..Default::default()
                };
                generate(
                    &base.with_adapter(ad),
                    &backbone.tokenizer,
                    p,
                    &cfg,
                    &mut |_| {},
                )
                .unwrap()
                .token_ids
            })
            .collect();
        // Batched: each row prefilled on its own, then every later token in one step for all rows.
        let mut caches: Vec<_> = prompts.iter().map(|_| base.new_cache()).collect();
        let mut last: Vec<u32> = Vec::new();
        for ((p, ad), cache) in prompts.iter().zip(adapters).zip(caches.iter_mut()) {
            let input = Tensor::new(p.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let logits = base
                .with_adapter(ad)
                .forward_last(&input, Some(cache))
                .unwrap();
            last.push(argmax(
                &logits.squeeze(0).unwrap().to_vec1::<f32>().unwrap(),
            ));
        }
        let mut batched: Vec<Vec<u32>> = last.iter().map(|&t| vec![t]).collect();
        for _ in 1..new_tokens {
            let mut rows: Vec<DecodeRow> = caches
                .iter_mut()
                .zip(adapters)
                .zip(&last)
                .map(|((cache, adapter), &token)| DecodeRow {
                    token,
                    cache,
                    adapter,
                })
                .collect();
            let logits = base.decode_step(&mut rows).unwrap();
            assert_eq!(logits.dims(), &[4, vocab as usize]);
            last = (0..4)
                .map(|r| argmax(&logits.get(r).unwrap().to_vec1::<f32>().unwrap()))
                .collect();
            for (out, &t) in batched.iter_mut().zip(&last) {
                out.push(t);
            }
        }
        assert_eq!(batched, alone, "{case}");
        // The logits themselves: a row of the batch against the same row decoded in a batch of one.
        let mut solo_cache = base.new_cache();
        let p = &prompts[3];
        let input = Tensor::new(p.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        base.with_adapter(Some(&a))
            .forward_last(&input, Some(&mut solo_cache))
            .unwrap();
        let mut one = [DecodeRow {
            token: alone[3][0],
            cache: &mut solo_cache,
            adapter: Some(&a),
        }];
        let solo = base.decode_step(&mut one).unwrap().get(0).unwrap();
        let mut reference_cache = base.new_cache();
        let model = base.with_adapter(Some(&a));
        model
            .forward_last(&input, Some(&mut reference_cache))
            .unwrap();
        let next = Tensor::new(&[alone[3][0]], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let reference = model
            .forward_last(&next, Some(&mut reference_cache))
            .unwrap()
            .get(0)
            .unwrap();
        let diff = ferrotune_test_support::max_diff(&solo, &reference);
        assert!(diff <= 1e-5, "{case}: max |Δlogit| = {diff}");
    }
}
