//! Time of one batched decoding step by batch size, on a backbone folder:
//! `cargo run --release -p ferrotune-engine --example decode_step -- BACKBONE_DIR`.
//! Each row has a 64-token cache; prints ms per step and the rows' tokens/s.

use std::time::Instant;

use ferrotune_model::{Backbone, DType, DecodeRow, Device, Tensor};

fn main() {
    let dir = std::env::args().nth(1).expect("a backbone folder");
    let backbone =
        Backbone::load_folder(std::path::Path::new(&dir), DType::F32, &Device::Cpu).expect("loads");
    let model = backbone.model.for_inference();
    println!("| rows | ms per step | tokens/s | × one row |");
    println!("|---|---|---|---|");
    let mut one = 0.0;
    for rows in [1usize, 2, 4, 8] {
        let mut caches: Vec<_> = (0..rows).map(|_| model.new_cache()).collect();
        for cache in caches.iter_mut() {
            let prompt: Vec<u32> = (0..64).map(|i| 100 + i).collect();
            let input = Tensor::new(prompt.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            model.forward_last(&input, Some(cache)).unwrap();
        }
        let steps = 12;
        let mut times = Vec::new();
        ferrotune_model::threads::install(|| {
            for _ in 0..steps {
                let mut batch: Vec<DecodeRow> = caches
                    .iter_mut()
                    .map(|cache| DecodeRow {
                        token: 42,
                        cache,
                        adapter: None,
                    })
                    .collect();
                let t = Instant::now();
                model.decode_step(&mut batch).unwrap();
                times.push(t.elapsed().as_secs_f64());
            }
        });
        times.sort_by(f64::total_cmp);
        let median = times[steps / 2];
        let tps = rows as f64 / median;
        if rows == 1 {
            one = tps;
        }
        println!(
            "| {rows} | {:.1} | {tps:.1} | {:.2}× |",
            median * 1e3,
            tps / one
        );
    }
}
