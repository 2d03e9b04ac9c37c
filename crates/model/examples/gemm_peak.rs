//! GFLOP/s of ferrotune's f32 GEMM (candle's CPU matmul on the `gemm` crate, AVX-512 where the CPU has it) on a
//! square 2048 product, best of 5, as JSON: `{"f32": GFLOPS}`. Used by `tools/bench/train.py --gemm-example`.
//!
//! `cargo run --release -p ferrotune-model --example gemm_peak`

use std::time::Instant;

use candle_core::{Device, Tensor};

fn main() -> candle_core::Result<()> {
    let n = 2048;
    let a = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    a.matmul(&b)?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        let c = a.matmul(&b)?;
        best = best.min(start.elapsed().as_secs_f64());
        drop(c);
    }
    println!("{{\"f32\": {:.1}}}", 2.0 * (n as f64).powi(3) / best / 1e9);
    Ok(())
}
