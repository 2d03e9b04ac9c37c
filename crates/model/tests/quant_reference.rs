//! Ferrotune's int8 and NF4 quantization against bitsandbytes (fixture: tools/fixtures/quant_reference.py).

use ferrotune_model::quant::{QuantizedMatrix, NF4_CODE};
use ferrotune_model::Quantization;
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/quant_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn nf4_code_book_and_dequantized_weights_equal_bitsandbytes() {
    let f = &fixture()["nf4"];
    let code = floats(&f["code"]);
    for (ours, theirs) in NF4_CODE.iter().zip(&code) {
        assert!(
            (ours - theirs).abs() < 1e-7,
            "code book: {ours} vs {theirs}"
        );
    }
    let (rows, cols) = (
        f["rows"].as_u64().unwrap() as usize,
        f["cols"].as_u64().unwrap() as usize,
    );
    let q = QuantizedMatrix::quantize(
        &floats(&f["weight"]),
        rows,
        cols,
        Quantization::Nf4 {
            double_quant: false,
        },
    );
    let ours = q.dequantize();
    let theirs = floats(&f["dequantized"]);
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-6, "NF4 dequantized weights differ by {worst}");
}

#[test]
fn int8_codes_equal_llm_int8_vectorwise_quantization_on_single_block_rows() {
    let f = &fixture()["int8"];
    let (rows, cols) = (
        f["rows"].as_u64().unwrap() as usize,
        f["cols"].as_u64().unwrap() as usize,
    );
    let q = QuantizedMatrix::quantize(&floats(&f["weight"]), rows, cols, Quantization::Int8);
    let ours = q.dequantize();
    let codes = floats(&f["codes"]);
    let absmax = floats(&f["row_absmax"]);
    for r in 0..rows {
        for c in 0..cols {
            let theirs = codes[r * cols + c] * absmax[r] / 127.0;
            let got = ours[r * cols + c];
            assert!(
                (got - theirs).abs() <= 1e-6 * absmax[r],
                "row {r} col {c}: {got} vs bitsandbytes {theirs}"
            );
        }
    }
}
