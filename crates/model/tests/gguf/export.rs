//! GGUF export: the tiny fixture backbones written as GGUF by `write_model_gguf` and read back by the importer
//! give back the same tensors (f32 exactly, f16 ≤ 1e-3 relative, q8_0 within its block bound, the K-quant mixes
//! within theirs) and the same tokenizer ids.

use std::collections::BTreeMap;
use std::path::Path;

use ferrotune_model::gguf::export::{write_model_gguf, GgufType};
use ferrotune_model::gguf::vocab::vocab_metadata;
use ferrotune_model::gguf::{import_gguf, GgufFile};
use ferrotune_model::merge::MergedWeights;
use ferrotune_model::{DType, Device};
use ferrotune_test_support::model_fixture;

const CORPUS: &[&str] = &[
    "Hello world, 123 apples!",
    "  leading spaces\nand\ttabs",
    "<|im_start|>user\nHi<|im_end|>",
    "Ünïcödé and emoji 🙂",
];

fn export(case: &str, ty: GgufType, dir: &Path) -> std::path::PathBuf {
    let backbone = model_fixture(case);
    let weights = MergedWeights::open(&backbone, None).unwrap();
    let cfg = weights.config().clone();
    let vocab = vocab_metadata(
        &backbone,
        cfg.vocab_size,
        (cfg.bos_token_id, cfg.eos_token_ids.first().copied()),
    )
    .unwrap();
    let path = dir.join(format!("{case}.{}.gguf", ty.name()));
    let mut calls = 0;
    let summary = write_model_gguf(
        &weights,
        vocab,
        Some("{{ x }}"),
        case,
        ty,
        &path,
        &mut |_, _| calls += 1,
    )
    .unwrap();
    assert_eq!(calls, summary.tensors);
    assert_eq!(
        summary.bytes,
        GgufFile::open(&path)
            .unwrap()
            .tensors
            .iter()
            .map(|t| t.n_bytes)
            .sum::<u64>()
    );
    path
}

fn tensors(dir: &Path) -> BTreeMap<String, Vec<f32>> {
    let w = ferrotune_model::weights::Weights::open(dir).unwrap();
    w.names()
        .map(|n| {
            let t = w.load(n, None, DType::F32, &Device::Cpu).unwrap();
            (
                n.to_string(),
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect()
}

fn ids(dir: &Path) -> Vec<Vec<u32>> {
    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    CORPUS
        .iter()
        .map(|t| tok.encode(*t, true).unwrap().get_ids().to_vec())
        .collect()
}

/// Exports `case` as `ty`, imports it back, and returns the largest error relative to each tensor's max.
fn round_trip(case: &str, ty: GgufType) -> f32 {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = export(case, ty, tmp.path());
    let back = tmp.path().join("back");
    let summary = import_gguf(&gguf, &back).unwrap();
    assert_eq!(
        summary.architecture,
        if case.starts_with("qwen2") {
            "qwen2"
        } else {
            "llama"
        }
    );
    let file = GgufFile::open(&gguf).unwrap();
    assert_eq!(file.str("tokenizer.chat_template").unwrap(), "{{ x }}");
    assert_eq!(
        ids(&back),
        ids(&model_fixture(case)),
        "{case}: tokenizer ids"
    );
    let (want, got) = (tensors(&model_fixture(case)), tensors(&back));
    let mut worst = 0f32;
    for (name, w) in &want {
        if name == "lm_head.weight" && !got.contains_key(name) {
            continue; // tied
        }
        let g = got
            .get(name)
            .unwrap_or_else(|| panic!("{case}: {name} missing after the round trip"));
        let max = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        let err = w.iter().zip(g).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / max;
        worst = worst.max(err);
    }
    worst
}

#[test]
fn f32_round_trips_exactly_and_the_tokenizer_gives_the_same_ids() {
    for case in ["llama3_rope", "qwen2_tied", "mistral_sharded"] {
        assert_eq!(round_trip(case, GgufType::F32), 0.0, "{case}");
    }
}

#[test]
fn sixteen_bit_and_quantized_types_stay_within_their_bounds() {
    // Relative to each tensor's largest value: f16 keeps 11 bits, q8_0 ±half a step of 127, q4_0 of 7 (its
    // scale is the block's max / -8), the K-quant mixes at least q4_k's 15 levels.
    for (ty, bound) in [
        (GgufType::F16, 1e-3),
        (GgufType::Bf16, 8e-3),
        (GgufType::Q8_0, 1.0 / 127.0),
        (GgufType::Q4_0, 1.0 / 7.0),
        (GgufType::Q6K, 1.0 / 31.0),
        (GgufType::Q5KM, 1.0 / 15.0),
        (GgufType::Q4KM, 1.0 / 7.0),
    ] {
        let err = round_trip("llama3_rope", ty);
        assert!(err > 0.0 && err <= bound, "{}: {err} > {bound}", ty.name());
    }
}

#[test]
fn llama_quantize_rules_pick_each_tensors_type() {
    use candle_core::quantized::GgmlDType as G;
    let t = |ty: GgufType, name: &str, shape: &[usize]| ty.tensor_type(name, shape, 16, false);
    assert_eq!(t(GgufType::Q4KM, "blk.0.attn_norm.weight", &[4096]), G::F32);
    assert_eq!(
        t(GgufType::Q4KM, "blk.5.attn_q.weight", &[4096, 4096]),
        G::Q4K
    );
    // attn_v / ffn_down: layers < 2, >= 14, and every third from 2 (2 + 2, 2 + 5, …) go up to q6_k.
    for (l, want) in [
        (0, G::Q6K),
        (1, G::Q6K),
        (2, G::Q4K),
        (4, G::Q6K),
        (5, G::Q4K),
        (7, G::Q6K),
        (14, G::Q6K),
    ] {
        assert_eq!(
            t(
                GgufType::Q4KM,
                &format!("blk.{l}.attn_v.weight"),
                &[1024, 4096]
            ),
            want,
            "layer {l}"
        );
        assert_eq!(
            t(
                GgufType::Q4KM,
                &format!("blk.{l}.ffn_down.weight"),
                &[4096, 11008]
            ),
            want,
            "layer {l}"
        );
    }
    assert_eq!(
        t(GgufType::Q5KM, "blk.3.attn_k.weight", &[1024, 4096]),
        G::Q5K
    );
    assert_eq!(t(GgufType::Q4KM, "output.weight", &[32000, 4096]), G::Q6K);
    assert_eq!(t(GgufType::Q4_0, "output.weight", &[32000, 4096]), G::Q6K);
    assert_eq!(t(GgufType::Q8_0, "output.weight", &[32000, 4096]), G::Q8_0);
    assert_eq!(
        t(GgufType::Q4KM, "token_embd.weight", &[32000, 4096]),
        G::Q4K
    );
    assert_eq!(
        GgufType::Q4KM.tensor_type("token_embd.weight", &[32000, 4096], 16, true),
        G::Q6K
    );
    // Rows that are no multiple of 256 fall back as llama.cpp does.
    assert_eq!(
        t(GgufType::Q4KM, "blk.5.attn_q.weight", &[576, 576]),
        G::Q5_0
    );
    assert_eq!(
        t(GgufType::Q5KM, "blk.5.attn_q.weight", &[576, 576]),
        G::Q5_1
    );
    assert_eq!(
        t(GgufType::Q6K, "blk.5.attn_q.weight", &[576, 576]),
        G::Q8_0
    );
    assert_eq!(t(GgufType::Q4KM, "output.weight", &[49152, 576]), G::Q8_0);
    assert_eq!(t(GgufType::Q8_0, "blk.0.attn_q.weight", &[64, 48]), G::F16);
    assert_eq!(t(GgufType::F16, "blk.0.attn_q.weight", &[64, 48]), G::F16);
    for ty in GgufType::ALL {
        assert_eq!(GgufType::parse(&ty.name().to_uppercase()), Some(ty));
    }
}
