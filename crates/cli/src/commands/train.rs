//! `ferrotune train`: fine-tune a backbone as an experiment file says. The work is in `ferrotune_train::run`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context};
use clap::Args;
use ferrotune_config::{load_with_overrides, split_override_args, Experiment};
use ferrotune_home::Home;
use ferrotune_train::events::Event;
use ferrotune_train::run::{run, RunRequest, RunSummary};
use indicatif::{ProgressBar, ProgressStyle};

use crate::printer::{command, Printer};

/// Fine-tune LoRA adapters on a backbone as the experiment file says (see `ferrotune config init`).
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The experiment file (YAML).
    #[arg(long, value_name = "FILE.yaml", required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// Continue the run in this output directory from its last checkpoint (after a stop, a crash or kill -9).
    #[arg(long, value_name = "OUTPUT_DIR", conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// Settings that override the file: `--training.learning_rate 1e-5`, `--dataset.prompt_column=a,b`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--SECTION.FIELD VALUE"
    )]
    pub overrides: Vec<String>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Ctrl-C and SIGTERM stop the run gracefully: it writes a checkpoint and exits as `stopped`.
fn install_stop_handler() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            request_stop as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            request_stop as *const () as libc::sighandler_t,
        );
    }
}

pub fn run_cmd(args: TrainArgs, printer: &Printer) -> anyhow::Result<()> {
    let overrides = split_override_args(&args.overrides)?;
    let (cfg, resume) = match (&args.config, &args.resume) {
        (_, Some(dir)) => {
            let path = ferrotune_home::RunDir::new(dir).config();
            if !path.is_file() {
                bail!("`{}` has no `cfg.yaml`\nhelp: --resume takes the output directory of an earlier run", dir.display());
            }
            let mut cfg = load_with_overrides(Some(&path), &overrides)?;
            // The run stays where it is, whatever the file's output_directory says.
            cfg.output_directory = dir.display().to_string();
            (cfg, true)
        }
        (Some(path), None) => (load_with_overrides(Some(path), &overrides)?, false),
        (None, None) => bail!("give --config FILE.yaml or --resume OUTPUT_DIR"),
    };
    let summary = train(cfg, resume, printer)?;
    printer.line(&serde_json::to_string(&summary)?)?;
    if summary.status == ferrotune_home::RunStatus::Stopped {
        printer.status(&format!(
            "stopped; continue with: {}",
            command(&format!("train --resume {}", summary.output_dir.display()))
        ));
    }
    Ok(())
}

/// Settles names, seed, demo defaults and runs the experiment with a progress bar.
pub fn train(mut cfg: Experiment, resume: bool, printer: &Printer) -> anyhow::Result<RunSummary> {
    let home = Home::from_env();
    if !resume {
        cfg.fill_generated(ferrotune_config::fresh_entropy());
    }
    let notes =
        ferrotune_train::run::fill_demo_defaults(&mut cfg, &home, &mut |m| printer.status(m))?;
    for note in notes {
        printer.status(&note);
    }
    // Refused before anything is written: the run folder is not created for a config that cannot run.
    ferrotune_train::run::preflight(&cfg, resume)
        .with_context(|| format!("experiment `{}` not started", cfg.experiment_name))?;
    check_not_running(&ferrotune_home::RunDir::new(cfg.output_dir()), printer)?;
    printer.status(&format!(
        "experiment `{}` → {}",
        cfg.experiment_name,
        cfg.output_dir().display()
    ));
    install_stop_handler();
    let bar = ProgressBar::hidden();
    if !printer.is_quiet() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut listener = |event: &Event| match event {
        Event::Step {
            step,
            total_steps,
            loss,
            lr,
            tokens_per_second,
            rewards,
            ..
        } => {
            bar.set_length(*total_steps);
            bar.set_position(*step);
            let margin = rewards
                .map(|r| format!("  margin {:.3}", r.margin))
                .unwrap_or_default();
            bar.set_message(format!(
                "loss {loss:.4}{margin}  lr {lr:.2e}  {tokens_per_second:.0} tok/s"
            ));
        }
        Event::Evaluation {
            step,
            validation_loss,
            metric_name,
            metric,
            rewards,
            ..
        } => {
            let rewards = rewards
                .map(|r| {
                    format!(
                        "; rewards chosen {:.3}, rejected {:.3}, margin {:.3}, accuracy {:.0} %",
                        r.chosen,
                        r.rejected,
                        r.margin,
                        100.0 * r.accuracy
                    )
                })
                .unwrap_or_default();
            bar.println(format!(
                "step {step}: validation loss {validation_loss:.4}, {metric_name} {metric:.4}{rewards}"
            ));
        }
        Event::Checkpoint { .. } => {}
        Event::PeakMemory {
            bytes, end_of_run, ..
        } => bar.println(format!(
            "peak resident memory {}: {}",
            if *end_of_run {
                "of the run"
            } else {
                "before this evaluation"
            },
            ferrotune_train::memory::gib(*bytes)
        )),
        Event::Log { message } => bar.println(message),
    };
    let request = RunRequest {
        config: &cfg,
        home: &home,
        resume,
        stop: &STOP,
    };
    let result = run(request, &mut listener);
    bar.finish_and_clear();
    let log = ferrotune_home::RunDir::new(cfg.output_dir()).log();
    result.with_context(|| match log.is_file() {
        true => format!(
            "experiment `{}` failed (see {})",
            cfg.experiment_name,
            log.display()
        ),
        false => format!("experiment `{}` failed", cfg.experiment_name),
    })
}

/// Refuses to train a folder another live process is training (its `status.json` says `running` with that
/// process's pid); says so when the process that wrote `running` is gone (killed before it could write how it
/// ended), whose leftovers the run then removes.
fn check_not_running(run: &ferrotune_home::RunDir, printer: &Printer) -> anyhow::Result<()> {
    let Some(status) = run.read_status() else {
        return Ok(());
    };
    let (ferrotune_home::RunStatus::Running, Some(pid)) = (status.status, status.pid) else {
        return Ok(());
    };
    if pid != std::process::id() && ferrotune_store::process::ProcessId::of(pid).is_alive() {
        bail!(
            "`{}` is being trained by process {pid}\nhelp: wait for it, or stop it first (`kill -TERM {pid}` writes a checkpoint; then resume)",
            run.root().display()
        );
    }
    printer.status(&format!(
        "the previous run of `{}` (process {pid}) died without writing how it ended",
        run.root().display()
    ));
    Ok(())
}
