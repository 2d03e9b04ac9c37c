//! Quantized backbones end to end on the tiny fixtures: the same model in f32, int8 and NF4 gives nearly the
//! logits (random-init weights amplify quantization noise: int8 stays within 5 %, NF4 within 60 % relative L2;
//! the demo backbone's perplexity is the real quality check, in the CLI's e2e tests), and the decoder's linear
//! weights take the advertised share of their f32 bytes.

use candle_core::{DType, Device, Tensor};
use ferrotune_model::{parse_weight_format, Backbone};
use ferrotune_test_support::model_fixture;

fn logits(backbone: &Backbone) -> Vec<f32> {
    let ids = Tensor::new(&[[1u32, 5, 9, 22, 7, 3, 11, 40]], &Device::Cpu).unwrap();
    backbone
        .model
        .forward(&ids, None)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    let diff: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let norm: f32 = a.iter().map(|x| x * x).sum();
    (diff / norm).sqrt()
}

#[test]
fn quantized_fixtures_track_the_float_logits_in_a_fraction_of_the_bytes() {
    for case in ["llama3_rope", "mistral_sharded", "qwen2_tied"] {
        let load = |name: &str| {
            Backbone::load_folder(
                &model_fixture(case),
                parse_weight_format(name).unwrap(),
                &Device::Cpu,
            )
            .unwrap()
        };
        let float = load("f32");
        let reference = logits(&float);
        let (float_linears, _) = float.model.frozen_weight_bytes();
        for (name, max_error, max_share) in [
            ("int8", 0.05, 0.30),
            ("int4", 0.6, 0.19),
            ("int4-dq", 0.6, 0.19),
        ] {
            let q = load(name);
            let err = relative_error(&reference, &logits(&q));
            assert!(err < max_error, "{case} {name}: relative logit error {err}");
            let (linears, _) = q.model.frozen_weight_bytes();
            let share = linears as f64 / float_linears as f64;
            assert!(share < max_share, "{case} {name}: {share} of the f32 bytes");
        }
    }
}

#[test]
fn an_unknown_dtype_names_the_quantized_choices() {
    let err = ferrotune_model::parse_weight_format("int9")
        .unwrap_err()
        .to_string();
    assert!(err.contains("int8") && err.contains("int4"), "{err}");
}
