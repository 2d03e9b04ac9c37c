use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn normal_matrix(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..rows * cols)
        .map(|_| {
            // Box–Muller: weights of trained models are roughly normal.
            let (u, v): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
            0.02 * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
        })
        .collect()
}

const FORMATS: [Quantization; 3] = [
    Quantization::Int8,
    Quantization::Nf4 {
        double_quant: false,
    },
    Quantization::Nf4 { double_quant: true },
];

/// Per-element check of the format's bound: int8 rounds to the nearest multiple of absmax/127 (error ≤
/// absmax/254); NF4 picks the nearest code value (no other code is closer).
fn assert_within_bound(w: &[f32], rows: usize, cols: usize, q: &QuantizedMatrix) {
    let deq = q.dequantize();
    for r in 0..rows {
        for (b, block) in w[r * cols..(r + 1) * cols].chunks(BLOCK).enumerate() {
            let absmax = block.iter().map(|v| v.abs()).fold(0f32, f32::max);
            let scale = q.scale(r, b);
            for (j, &v) in block.iter().enumerate() {
                let d = deq[r * cols + b * BLOCK + j];
                match q.format() {
                    QuantFormat::Int8 => {
                        assert!((scale - absmax / 127.0).abs() <= 1e-6 * absmax);
                        assert!(
                            (v - d).abs() <= absmax / 254.0 * 1.0001 + 1e-12,
                            "{v} → {d}"
                        );
                    }
                    QuantFormat::Nf4 => {
                        let best = NF4_CODE
                            .iter()
                            .map(|c| (v - c * scale).abs())
                            .fold(f32::INFINITY, f32::min);
                        assert!(
                            (v - d).abs() <= best + 1e-6 * absmax,
                            "{v} → {d}, nearest code is {best} away"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn round_trip_is_within_the_format_bound_for_sizes_that_do_not_divide_by_the_block() {
    for (rows, cols) in [(3, 100), (5, 64), (2, 1), (4, 129), (1, 127)] {
        let w = normal_matrix(rows, cols, 7);
        for quant in FORMATS[..2].iter() {
            let q = QuantizedMatrix::quantize(&w, rows, cols, *quant);
            assert_eq!(q.dims(), (rows, cols));
            assert_within_bound(&w, rows, cols, &q);
        }
    }
}

#[test]
fn zero_blocks_stay_zero_and_an_outlier_coarsens_only_its_own_block() {
    let (rows, cols) = (2, 192);
    let mut w = normal_matrix(rows, cols, 3);
    w[..64].iter_mut().for_each(|v| *v = 0.0); // block 0 of row 0: all zeros
    w[64 + 5] = 40.0; // an outlier in block 1 of row 0
    for quant in FORMATS {
        let q = QuantizedMatrix::quantize(&w, rows, cols, quant);
        let deq = q.dequantize();
        assert!(deq[..64].iter().all(|&v| v == 0.0), "{quant:?}: zero block");
        assert!(
            (deq[64 + 5] - 40.0).abs() < 0.4,
            "{quant:?}: the outlier itself is kept"
        );
        // Blocks without the outlier keep the precision of normal weights.
        let err_other: f32 = (128..cols)
            .chain(cols..2 * cols)
            .map(|i| (w[i] - deq[i]).abs())
            .fold(0.0, f32::max);
        assert!(
            err_other < 0.02,
            "{quant:?}: other blocks lost precision ({err_other})"
        );
        if quant != (Quantization::Nf4 { double_quant: true }) {
            assert_within_bound(&w, rows, cols, &q);
        }
    }
}

#[test]
fn double_quantized_scales_are_within_their_own_bound() {
    let (rows, cols) = (40, 640); // 400 blocks: one full group of 256 scales and a partial one
    let w = normal_matrix(rows, cols, 11);
    let plain = QuantizedMatrix::quantize(
        &w,
        rows,
        cols,
        Quantization::Nf4 {
            double_quant: false,
        },
    );
    let double =
        QuantizedMatrix::quantize(&w, rows, cols, Quantization::Nf4 { double_quant: true });
    let Scales::F32(exact) = &plain.scales else {
        panic!("plain scales")
    };
    let Scales::Double { log_step, .. } = &double.scales else {
        panic!("double scales")
    };
    for (i, &s) in exact.iter().enumerate() {
        let got = double.scales.get(i);
        // Rounding on a log₂ grid: the relative error is at most 2^(step/2) − 1.
        let bound = (log_step[i / SCALE_GROUP] / 2.0).exp2() - 1.0;
        assert!(
            (got / s - 1.0).abs() <= bound * 1.001 + 1e-6,
            "scale {i}: {s} → {got}"
        );
    }
    // Codes are identical; only the scales differ.
    assert_eq!(plain.codes, double.codes);
    assert!(double.storage_bytes() < plain.storage_bytes());
}

#[test]
fn relative_error_on_normal_weights_matches_the_literature() {
    // Mean relative L2 error on normal weights: int8 absmax ≈ 1 %, NF4 ≈ 10 % (QLoRA, Table 2 regime).
    let w = normal_matrix(64, 1024, 5);
    let norm: f32 = w.iter().map(|v| v * v).sum::<f32>().sqrt();
    let rel = |quant| {
        let deq = QuantizedMatrix::quantize(&w, 64, 1024, quant).dequantize();
        w.iter()
            .zip(&deq)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            .sqrt()
            / norm
    };
    let (int8, nf4) = (rel(Quantization::Int8), rel(FORMATS[1]));
    assert!(int8 < 0.012, "int8 relative error {int8}");
    assert!((0.05..0.12).contains(&nf4), "nf4 relative error {nf4}");
}

#[test]
fn storage_bytes_match_the_advertised_bytes_per_weight() {
    let (rows, cols) = (64, 1024);
    let w = normal_matrix(rows, cols, 1);
    for quant in FORMATS {
        let q = QuantizedMatrix::quantize(&w, rows, cols, quant);
        let per_weight = q.storage_bytes() as f64 / (rows * cols) as f64;
        let expected = quant.bytes_per_weight().unwrap();
        assert!(
            (per_weight - expected).abs() < 1e-3,
            "{quant:?}: {per_weight} vs {expected}"
        );
    }
    assert!(Quantization::Int8.bytes_per_weight().unwrap() / 4.0 <= 0.3);
    assert!(FORMATS[1].bytes_per_weight().unwrap() / 4.0 <= 0.17);
}

#[test]
fn nearest_code_picks_the_closest_value() {
    for i in 0..=2000 {
        let x = -1.0 + i as f32 / 1000.0;
        let code = nf4::nearest(x) as usize;
        let best = NF4_CODE
            .iter()
            .map(|c| (x - c).abs())
            .fold(f32::INFINITY, f32::min);
        assert!(((x - NF4_CODE[code]).abs() - best).abs() < 1e-7, "x = {x}");
    }
    assert_eq!(nf4::nearest(1.5), 15);
    assert_eq!(nf4::nearest(-1.5), 0);
}

#[test]
fn matmul_values_and_input_gradient_match_the_dequantized_reference() {
    let dev = Device::Cpu;
    for (n, k, m) in [(37, 100, 11), (130, 192, 3), (9, 64, 1)] {
        for quant in FORMATS {
            let q = Arc::new(QuantizedMatrix::quantize(
                &normal_matrix(n, k, 9),
                n,
                k,
                quant,
            ));
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap()).unwrap();
            crate::kernels::assert_matches_reference(
                |x| quantized_matmul(x, &q),
                |x| quantized_matmul_reference(x, &q),
                &x,
                (1e-5, 1e-4),
            );
        }
    }
}
