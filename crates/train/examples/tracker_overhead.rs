//! What each experiment tracker costs per optimizer step, against a run's median step time.
//!
//! `cargo run --release -p ferrotune-train --example tracker_overhead -- [RUN_DIR]`: sends 2000 step events (and an
//! evaluation every 50) to each tracker of `logging.logger` and prints the cost per step; with RUN_DIR (a finished
//! run), also that run's median `step_seconds` and the tracker's share of it. MLflow is measured when
//! `MLFLOW_TRACKING_URI` names a running server (`mlflow server --port 5000`); its sending thread runs beside the
//! loop, and the time the run's end waits for it is printed too.

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
        "| tracker | µs per step | share of a {} step | end of run waits |",
        median_step.map_or("—".into(), |s| format!("{s:.3} s"))
    );
    println!("|---|---|---|---|");
    let mut loggers = vec![Logger::TensorBoard];
    if std::env::var_os(ferrotune_config::MLFLOW_TRACKING_URI_ENV).is_some() {
        loggers.push(Logger::MLflow);
    } else {
        eprintln!("MLflow not measured: set MLFLOW_TRACKING_URI to a running server");
    }
    for logger in loggers {
        let tmp =
            std::env::temp_dir().join(format!("ferrotune-tracker-overhead-{}", std::process::id()));
        let run = RunDir::new(&tmp);
        let mut cfg = Experiment::default();
        cfg.logging.logger = logger;
        cfg.experiment_name = "tracker-overhead".into();
        std::fs::create_dir_all(&tmp).expect("a temporary folder");
        cfg.save(&run.config())
            .expect("cfg.yaml in the temporary folder");
        let (mut trackers, _) = ferrotune_train::trackers::for_config(&cfg, &run, false);
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
        let end = ferrotune_train::trackers::RunEnd {
            status: ferrotune_home::RunStatus::Finished,
            message: "",
        };
        let finishing = Instant::now();
        for t in trackers.iter_mut() {
            for line in t.finish(&end) {
                eprintln!("{line}");
            }
        }
        let share = median_step.map_or("—".into(), |s| format!("{:.4} %", 100.0 * per_step / s));
        println!(
            "| {logger} | {:.1} | {share} | {:.2} s |",
            per_step * 1e6,
            finishing.elapsed().as_secs_f64()
        );
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
