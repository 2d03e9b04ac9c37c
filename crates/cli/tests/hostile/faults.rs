//! Generation, scoring and chat with odd requests, runs that another process holds, and the interruptions
//! (kill -9, SIGTERM, a full disk, two processes at once, divergence) that heavier tests cover.

use std::time::{Duration, Instant};

use ferrotune_test_support::{experiment_yaml, model_fixture, write_arithmetic_data};

use crate::catalogue::{Case, Check};
use crate::lab::{assert_clean, s, stderr, stdout, Lab};

pub const CASES: &[Case] = &[
    Case {
        id: "faults.predict-unknown-run",
        guards: "`predict` of a run that is neither a run folder nor an experiment says which, and a folder without `cfg.yaml` is named",
        check: Check::Run(predict_unknown_run),
    },
    Case {
        id: "faults.predict-bad-input",
        guards: "`predict` refuses an input that already has a `prediction` column and writes nothing; new data may lack the answer",
        check: Check::Elsewhere("crates/cli/tests/e2e/train.rs::predict_writes_the_inputs_with_the_runs_answers"),
    },
    Case {
        id: "faults.predict-missing-prompt-column",
        guards: "a studio prediction of a file without the run's prompt column names the column; a stray download name is a 400",
        check: Check::Elsewhere("crates/server/tests/lifecycle.rs::the_predict_panel_applies_the_run_to_an_upload_and_offers_the_csv"),
    },
    Case {
        id: "faults.score-empty-input",
        guards: "`score` of an empty file, or one of blank lines, says it holds no texts and what a line looks like",
        check: Check::Run(score_empty_input),
    },
    Case {
        id: "faults.score-bad-line",
        guards: "`score` names the line that is not JSON, or has no string `text`",
        check: Check::Run(score_bad_line),
    },
    Case {
        id: "faults.max-new-tokens-zero",
        guards: "`generate --max-new-tokens 0` is refused before the model loads, naming the flag and its range",
        check: Check::Run(max_new_tokens_zero),
    },
    Case {
        id: "faults.max-new-tokens-huge",
        guards: "`generate --max-new-tokens 1000000000` is capped at the model's context, with one note saying so",
        check: Check::Run(max_new_tokens_huge),
    },
    Case {
        id: "faults.prompt-past-context",
        guards: "a prompt longer than the model's context is refused with both lengths",
        check: Check::Run(prompt_past_context),
    },
    Case {
        id: "faults.negative-temperature",
        guards: "`--temperature=-1` is refused naming the setting, with nothing printed before it",
        check: Check::Run(negative_temperature),
    },
    Case {
        id: "faults.beams-with-sampling",
        guards: "beam search with a temperature says beam search is deterministic",
        check: Check::Run(beams_with_sampling),
    },
    Case {
        id: "faults.chat-without-template",
        guards: "`generate --chat` on a backbone without a chat template says so and how to run without it",
        check: Check::Run(chat_without_template),
    },
    Case {
        id: "faults.chat-stdin-closed",
        guards: "`chat` with its input closed at once exits cleanly (status 0, no answer, no panic)",
        check: Check::Run(chat_stdin_closed),
    },
    Case {
        id: "faults.train-a-live-run",
        guards: "`train` into a folder whose `status.json` says running with a live pid refuses, naming the pid",
        check: Check::Run(train_a_live_run),
    },
    Case {
        id: "faults.kill-9-then-resume",
        guards: "`train` killed with -9 mid-step, then `--resume`: the adapter of an uninterrupted run, the dead run named",
        check: Check::Elsewhere("crates/cli/tests/e2e/train.rs::resume_after_kill_9_ends_with_the_same_adapter"),
    },
    Case {
        id: "faults.sigterm-stops-and-resumes",
        guards: "`experiment stop` (SIGTERM) checkpoints the run as stopped, and `resume` finishes it",
        check: Check::Elsewhere("crates/cli/tests/experiment.rs::a_runner_killed_alone_is_replaced_and_its_run_adopted_stopped_and_resumed"),
    },
    Case {
        id: "faults.runner-killed-with-its-run",
        guards: "a runner killed with its training process: the run is failed, not left running, and resume finishes it",
        check: Check::Elsewhere("crates/cli/tests/experiment.rs::a_runner_killed_with_its_training_is_failed_and_resume_finishes"),
    },
    Case {
        id: "faults.disk-full-checkpoint",
        guards: "a checkpoint write that fails (disk full) keeps the previous checkpoint, and the run resumes from it",
        check: Check::Elsewhere("crates/cli/tests/experiment.rs::a_failed_checkpoint_write_keeps_the_previous_checkpoint"),
    },
    Case {
        id: "faults.two-starts-at-once",
        guards: "two `experiment start`s at the same moment both queue, and run one at a time",
        check: Check::Elsewhere("crates/cli/tests/experiment.rs::two_processes_start_at_once_both_run_one_at_a_time"),
    },
    Case {
        id: "faults.dead-run-is-failed",
        guards: "an experiment marked running whose process is gone is shown failed with its last log lines",
        check: Check::Elsewhere("crates/store/tests/experiments.rs::a_running_experiment_whose_process_is_gone_is_failed_by_readers"),
    },
    Case {
        id: "faults.died-run-leftovers",
        guards: "a plain `train` folder killed mid-checkpoint is found by `doctor` and repaired (status, staged checkpoint)",
        check: Check::Elsewhere("crates/cli/tests/dataset.rs::doctor_finds_a_died_run_and_its_leftovers_and_repairs_them"),
    },
    Case {
        id: "faults.diverging-loss",
        guards: "a learning rate that drives the loss to NaN fails the run naming the step",
        check: Check::Elsewhere("crates/cli/tests/e2e/train.rs::a_diverging_loss_fails_the_run_with_the_step"),
    },
    Case {
        id: "faults.wrecked-run",
        guards: "a run whose loss climbs to the uniform value with a vanishing gradient is failed, not finished",
        check: Check::Elsewhere("crates/cli/tests/e2e/train.rs::r20_a_wrecked_run_is_failed_not_finished"),
    },
    Case {
        id: "faults.divergence-keeps-good-checkpoint",
        guards: "after a divergence the kept checkpoint is the last good one, and resuming it with a smaller rate works",
        check: Check::Elsewhere("crates/cli/tests/e2e/train.rs::r20_divergence_keeps_the_last_good_checkpoint_and_it_resumes"),
    },
    Case {
        id: "faults.registry-deleted",
        guards: "a deleted `registry.sqlite` is noticed and `doctor --rebuild-index` brings every dataset back",
        check: Check::Elsewhere("crates/cli/tests/dataset.rs::a_deleted_registry_is_rebuilt_by_doctor"),
    },
    Case {
        id: "faults.registry-corrupt",
        guards: "a corrupt registry names the fix and is rebuilt from the files",
        check: Check::Elsewhere("crates/store/tests/registry.rs::a_corrupt_registry_names_the_fix_and_is_rebuilt"),
    },
];

fn tiny() -> String {
    s(&model_fixture("llama3_rope"))
}

fn score_empty_input(lab: &Lab) {
    for (name, text) in [("empty.jsonl", ""), ("blank.jsonl", "\n  \n\n")] {
        let input = lab.file(name, text);
        lab.refuses(
            &["score", "--model", &tiny(), "--input", &input],
            &[name, "holds no texts", "help:", "\"text\""],
        );
    }
}

fn score_bad_line(lab: &Lab) {
    let input = lab.file("bad-line.jsonl", "{\"text\": \"ok\"}\n\n{oops\n");
    lab.refuses(
        &["score", "--model", &tiny(), "--input", &input],
        &["bad-line.jsonl", "line 3 is not valid JSON", "help:"],
    );
    let input = lab.file("no-text.jsonl", "{\"text\": \"ok\"}\n{\"text\": 3}\n");
    lab.refuses(
        &["score", "--model", &tiny(), "--input", &input],
        &[
            "no-text.jsonl",
            "line 2 has no string field `text`",
            "help:",
        ],
    );
}

fn max_new_tokens_zero(lab: &Lab) {
    // The model does not exist: the flag is checked first.
    lab.refuses(
        &[
            "generate",
            "--model",
            "no-such-model",
            "--prompt",
            "hi",
            "--max-new-tokens",
            "0",
        ],
        &["--max-new-tokens", "'0'", "not in 1.."],
    );
}

fn max_new_tokens_huge(lab: &Lab) {
    let args = [
        "generate",
        "--model",
        &tiny(),
        "--prompt",
        "hi",
        "--max-new-tokens",
        "1000000000",
    ];
    let started = Instant::now();
    let o = lab.succeeds(&args);
    let err = stderr(&o);
    assert_eq!(
        err.matches("note: --max-new-tokens 1000000000").count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("256 tokens") && err.contains("at most 253 new tokens"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

fn prompt_past_context(lab: &Lab) {
    let prompt = "hello ".repeat(400);
    lab.refuses(
        &["generate", "--model", &tiny(), "--prompt", &prompt],
        &[
            "the prompt has",
            "context holds 256 tokens",
            "shorten the prompt",
        ],
    );
}

fn negative_temperature(lab: &Lab) {
    let o = lab.refuses(
        &[
            "generate",
            "--model",
            &tiny(),
            "--prompt",
            "hi",
            "--temperature=-1",
        ],
        &["`temperature` must be ≥ 0"],
    );
    assert!(stderr(&o).starts_with("error:"), "{}", stderr(&o));
}

fn beams_with_sampling(lab: &Lab) {
    lab.refuses(
        &[
            "generate",
            "--model",
            &tiny(),
            "--prompt",
            "x",
            "--num-beams",
            "3",
            "--temperature",
            "0.7",
        ],
        &["beam search is deterministic"],
    );
}

fn chat_without_template(lab: &Lab) {
    let dir = lab.model_copy("llama3_rope", "no-template");
    std::fs::remove_file(dir.join("tokenizer_config.json")).unwrap();
    lab.refuses(
        &["generate", "--model", &s(&dir), "--prompt", "hi", "--chat"],
        &["chat template", "help:", "without `--chat`"],
    );
}

fn chat_stdin_closed(lab: &Lab) {
    let args = ["chat", "--model", &tiny(), "--max-new-tokens", "3"];
    let o = lab.run_with_input(&args, b"");
    assert!(
        o.status.success(),
        "chat with no input failed: {}",
        stderr(&o)
    );
    assert_clean(&o, &args);
    assert!(
        stdout(&o).trim().is_empty() || !stdout(&o).contains("error"),
        "{}",
        stdout(&o)
    );
}

fn train_a_live_run(lab: &Lab) {
    let data = write_arithmetic_data(lab.scratch(), "live-data.json", 20);
    let out = lab.path("runs");
    let cfg = lab.file("live.yaml", experiment_yaml("live", &out, &data));
    let run = out.join("live");
    std::fs::create_dir_all(&run).unwrap();
    // This test process is alive, and it is not the one that will run `train`.
    let status = format!(
        "{{\"status\":\"running\",\"message\":\"\",\"pid\":{}}}",
        std::process::id()
    );
    std::fs::write(run.join("status.json"), &status).unwrap();
    lab.refuses(
        &["train", "--config", &cfg],
        &[
            "is being trained by process",
            &std::process::id().to_string(),
            "help:",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(run.join("status.json")).unwrap(),
        status
    );
    assert_eq!(
        std::fs::read_dir(&run).unwrap().count(),
        1,
        "nothing else written"
    );
}

/// Opt-in (`FERROTUNE_HOSTILE_BIG=1`): a 300 MB CSV imports within 1 GB of peak memory (the child's peak
/// resident set, from `wait4`).
pub fn big_csv(lab: &Lab) {
    if std::env::var_os("FERROTUNE_HOSTILE_BIG").is_none_or(|v| v != "1") {
        return;
    }
    let path = lab.path("big.csv");
    let rows = {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(w, "prompt,answer").unwrap();
        let filler = "lorem ipsum dolor sit amet ".repeat(4);
        let mut i = 0u64;
        while w.get_ref().metadata().unwrap().len() < 300_000_000 {
            for _ in 0..10_000 {
                writeln!(w, "question {i}: {filler},answer {i}: {filler}{filler}").unwrap();
                i += 1;
            }
            w.flush().unwrap();
        }
        i
    };
    let size = std::fs::metadata(&path).unwrap().len();
    let summary = lab.path("big-import.txt");
    let started = Instant::now();
    #[allow(
        clippy::zombie_processes,
        reason = "reaped below by wait4, which also gives its peak memory"
    )]
    let mut child = lab
        .command(&["dataset", "import", &s(&path), "--name", "big"])
        .stdout(std::fs::File::create(&summary).unwrap())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait4 gives this child's own peak resident set (ru_maxrss, in kB), whatever else the tests run.
    let pid = child.id() as libc::pid_t;
    let (mut raw_status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    loop {
        // SAFETY: plain system call on our own child with valid out-pointers.
        let done = unsafe { libc::wait4(pid, &mut raw_status, libc::WNOHANG, &mut usage) };
        assert!(done >= 0, "wait4 failed");
        if done == pid {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let wall = started.elapsed();
    let peak_kb = usage.ru_maxrss as u64;
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let ok = libc::WIFEXITED(raw_status) && libc::WEXITSTATUS(raw_status) == 0;
    assert!(ok, "{err}");
    let out = std::fs::read_to_string(&summary).unwrap();
    assert!(
        out.contains(&format!("imported `big`: {rows} rows")),
        "{out}"
    );
    eprintln!(
        "big CSV: {:.0} MB, {rows} rows imported in {:.1} s, peak RSS {:.0} MB",
        size as f64 / 1e6,
        wall.as_secs_f64(),
        peak_kb as f64 / 1024.0
    );
    assert!(peak_kb < 1024 * 1024, "peak RSS {peak_kb} kB is over 1 GB");
    lab.succeeds(&["dataset", "delete", "big"]);
    std::fs::remove_file(&path).unwrap();
}

fn predict_unknown_run(lab: &Lab) {
    let input = lab.file("new.csv", "instruction,input\nAdd 1 and 2.,\n");
    let out = lab.path("out.csv");
    lab.refuses(
        &[
            "predict",
            "no-such-run",
            "--input",
            &input,
            "--output",
            &crate::lab::s(&out),
        ],
        &["no experiment named `no-such-run`", "help:"],
    );
    let folder = lab.path("not-a-run");
    std::fs::create_dir_all(&folder).unwrap();
    lab.refuses(
        &[
            "predict",
            &crate::lab::s(&folder),
            "--input",
            &input,
            "--output",
            &crate::lab::s(&out),
        ],
        &["holds no `cfg.yaml`", "not a run folder", "help:"],
    );
    assert!(!out.exists(), "nothing written");
}
