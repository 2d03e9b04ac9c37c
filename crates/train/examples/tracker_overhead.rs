//! What each experiment tracker costs per optimizer step, against a run's median step time.
//!
//! `cargo run --release -p ferrotune-train --example tracker_overhead -- [RUN_DIR]`: sends 2000 step events (and an
//! evaluation every 50) to each tracker of `logging.logger` and prints the cost per step; with RUN_DIR (a finished
//! run), also that run's median `step_seconds` and the tracker's share of it.

use std::time::Instant;

use ferrotune_config::{Experiment, Logger};
use ferrotune_home::{Event, RunDir};

fn main() {
    let median_step = std::env::args().nth(1).map(|dir| {
        let text =
            std::fs::read_to_string(RunDir::new(&dir).metrics()).expect("the run's metrics.jsonl");
        let mut s: Vec<f64> = text
            .lines()
            .filter_map(Event::from_line)
            .filter_map(|e| match e {
                Event::Step { step_seconds, .. } => Some(step_seconds),
                _ => None,
            })
            .collect();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    });
    println!(
        "| tracker | µs per step | share of a {} step |",
        median_step.map_or("—".into(), |s| format!("{s:.3} s"))
    );
    println!("|---|---|---|");
    for logger in [Logger::TensorBoard] {
        let tmp =
            std::env::temp_dir().join(format!("ferrotune-tracker-overhead-{}", std::process::id()));
        let run = RunDir::new(&tmp);
        let mut cfg = Experiment::default();
        cfg.logging.logger = logger;
        let (mut trackers, _) = ferrotune_train::trackers::for_config(&cfg, &run);
        let n = 2000u64;
        let start = Instant::now();
        for step in 1..=n {
            let event = Event::Step {
                step,
                total_steps: n,
                epoch: step as f64 / n as f64,
                samples_seen: step * 4,
                loss: 2.0 / step as f64,
                lr: 1e-4,
                grad_norm: 0.5,
                tokens_per_second: 1000.0,
                step_seconds: 1.0,
                rewards: None,
            };
            for t in trackers.iter_mut() {
                t.record(&event).expect("the tracker records");
            }
            if step % 50 == 0 {
                let eval = Event::Evaluation {
                    step,
                    epoch: 0.0,
                    validation_loss: 1.0,
                    perplexity: 2.7,
                    metric_name: "Perplexity".into(),
                    metric: 2.7,
                    rewards: None,
                };
                for t in trackers.iter_mut() {
                    t.record(&eval).expect("the tracker records");
                }
            }
        }
        let per_step = start.elapsed().as_secs_f64() / n as f64;
        let share = median_step.map_or("—".into(), |s| format!("{:.4} %", 100.0 * per_step / s));
        println!("| {logger} | {:.1} | {share} |", per_step * 1e6);
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
