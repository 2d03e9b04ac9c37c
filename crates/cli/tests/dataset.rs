//! `ferrotune dataset …` and `ferrotune doctor` through the real binary, each test in its own temporary
//! `FERROTUNE_HOME`.

use std::io::Write;
use std::path::{Path, PathBuf};

use std::process::{Command, Output};

use serde_json::Value;

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrotune"));
        cmd.args(args).env("FERROTUNE_HOME", self.root());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    fn file(&self, name: &str, text: impl AsRef<[u8]>) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn list(&self) -> Vec<Value> {
        serde_json::from_str::<Vec<Value>>(&self.ok(&["dataset", "list", "--json"])).unwrap()
    }

    fn names(&self) -> Vec<String> {
        self.list()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Entries of `datasets/` other than the lock folder (so leftovers show).
    fn dataset_folders(&self) -> Vec<String> {
        let dir = self.root().join("datasets");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n != ".locks")
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed run: non-zero exit, the expected words, no panic.
fn assert_clean_failure(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "should fail: {err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn alpaca(rows: usize) -> String {
    let items: Vec<Value> = (0..rows)
        .map(|i| serde_json::json!({"instruction": format!("say {i}"), "input": "", "output": format!("number {i} is here")}))
        .collect();
    serde_json::to_string(&items).unwrap()
}

#[test]
fn import_list_show_merge_delete() {
    let h = Home::new();
    let train = h.file("train.json", alpaca(5));
    let valid = h.file("valid.json", alpaca(2));
    let out = h.ok(&[
        "dataset",
        "import",
        &train,
        "--name",
        "demo",
        "--validation",
        &valid,
    ]);
    assert!(
        out.contains("imported `demo`: 5 rows, 5 conversations, 2 validation rows (alpaca (json))"),
        "{out}"
    );

    let list = h.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["train"]["rows"], 5);
    let table = h.ok(&["dataset", "list"]);
    assert!(
        table.contains("demo") && table.contains("alpaca (json)"),
        "{table}"
    );

    let shown = h.ok(&["dataset", "show", "demo", "--sample", "2"]);
    assert!(shown.contains("turns per conversation"), "{shown}");
    assert!(shown.contains("answer words: min 4"), "{shown}");
    assert!(shown.contains('█'), "histogram bars: {shown}");
    assert!(
        shown.contains("sample (2 rows)") && shown.contains("prompt: say 1"),
        "{shown}"
    );
    assert!(!shown.contains("say 2"), "only two sample rows: {shown}");
    let json: Value = serde_json::from_str(&h.ok(&["dataset", "show", "demo", "--json"])).unwrap();
    assert_eq!(json["validation"]["rows"], 2);
    assert_eq!(json["train"]["statistics"]["columns"]["input"]["empty"], 5);

    let more = h.file("more.csv", "question,response\nwhy,because of this\n");
    let out = h.ok(&["dataset", "merge", "demo", &more]);
    assert!(out.contains("6 train rows"), "{out}");
    let out = h.ok(&["dataset", "merge", "demo", &more, "--validation"]);
    assert!(out.contains("3 validation rows"), "{out}");
    let json: Value = serde_json::from_str(&h.ok(&["dataset", "show", "demo", "--json"])).unwrap();
    assert_eq!(json["files"].as_array().unwrap().len(), 4);
    assert_eq!(json["train"]["statistics"]["answer_words"]["max"], 4);

    h.ok(&["dataset", "delete", "demo"]);
    assert!(h.names().is_empty());
    assert!(h.dataset_folders().is_empty(), "{:?}", h.dataset_folders());
    assert_clean_failure(
        &h.run(&["dataset", "show", "demo"]),
        &["no dataset named `demo`"],
    );
}

#[test]
fn pairs_with_columns_of_their_own_names_import_with_rejected_column() {
    let h = Home::new();
    let file = h.file(
        "own.csv",
        "question,good,bad\nWhat is 2+2?,Four.,Five.\nCapital of France?,Paris.,Lyon.\n",
    );
    let out = h.ok(&[
        "dataset",
        "import",
        &file,
        "--name",
        "own",
        "--prompt-column",
        "question",
        "--answer-column",
        "good",
        "--rejected-column",
        "bad",
    ]);
    assert!(out.contains("preference (flat)"), "{out}");
    let table = std::fs::read_to_string(h.root().join("datasets/own/train.jsonl")).unwrap();
    let first: Value = serde_json::from_str(table.lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            first["chosen_response"].as_str(),
            first["rejected_response"].as_str()
        ),
        (Some("Four."), Some("Five."))
    );
    // A rejected column that is not there is named with its flag.
    let err = h.run(&[
        "dataset",
        "import",
        &file,
        "--name",
        "own2",
        "--prompt-column",
        "question",
        "--answer-column",
        "good",
        "--rejected-column",
        "worse",
    ]);
    assert!(!err.status.success());
    let text = String::from_utf8_lossy(&err.stderr);
    assert!(
        text.contains("worse") && text.contains("--rejected-column"),
        "{text}"
    );
}

#[test]
fn llamafactory_preference_pairs_import_and_show() {
    let h = Home::new();
    let pairs = serde_json::json!([
        {"conversations": [{"from": "system", "value": "Be exact."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}, {"from": "human", "value": "What is 2+2?"}],
         "chosen": {"from": "gpt", "value": "Four."}, "rejected": {"from": "gpt", "value": "Five, I think."}},
        {"conversations": [{"from": "human", "value": "Capital of France?"}], "chosen": {"from": "gpt", "value": "Paris."}, "rejected": {"from": "gpt", "value": "Lyon."}}
    ]);
    let file = h.file("dpo.json", pairs.to_string());
    let out = h.ok(&["dataset", "import", &file, "--name", "dpo"]);
    assert!(
        out.contains("imported `dpo`: 3 rows, 2 conversations (preference (llamafactory) (json))"),
        "{out}"
    );

    let shown = h.ok(&["dataset", "show", "dpo", "--sample", "3"]);
    assert!(
        shown.contains("dataset `dpo`: preference (llamafactory) (json)"),
        "{shown}"
    );
    assert!(shown.contains("llamafactory json"), "{shown}");
    assert!(
        shown.contains("prompt: What is 2+2?") && shown.contains("answer: Four."),
        "{shown}"
    );
    assert!(shown.contains("rejected: Five, I think."), "{shown}");
    assert!(
        shown.contains("preference pairs: 2 (0 with the rejected answer equal to the chosen one)"),
        "{shown}"
    );
    assert!(shown.contains("rejected answer words"), "{shown}");
    let json: Value = serde_json::from_str(&h.ok(&["dataset", "show", "dpo", "--json"])).unwrap();
    assert_eq!(json["files"][0]["shape"], "llamafactory");
    let pairs = &json["train"]["statistics"]["preference"];
    assert_eq!(pairs["rows"], 2);
    assert_eq!(pairs["identical"], 0);
    assert_eq!(pairs["chosen_words"]["max"], 1);
    assert_eq!(pairs["rejected_words"]["max"], 3);
    let table = std::fs::read_to_string(h.root().join("datasets/dpo/train.jsonl")).unwrap();
    let last: Value = serde_json::from_str(table.lines().nth(1).unwrap()).unwrap();
    assert_eq!(last["chosen_response"], "Four.");
    assert_eq!(last["rejected_response"], "Five, I think.");
    assert_eq!(last["parent_id"], "r0");

    // A pair without its rejected answer names the row and the column, and leaves nothing.
    let bad = h.file(
        "bad.jsonl",
        "{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}], \"chosen\": \"a\", \"rejected\": \"b\"}\n\
         {\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}], \"chosen\": \"a\", \"rejected\": \"\"}\n",
    );
    assert_clean_failure(
        &h.run(&["dataset", "import", &bad, "--name", "bad"]),
        &["bad.jsonl", "line 2", "column `rejected` is empty", "help:"],
    );
    assert_eq!(h.names(), ["dpo"]);
    assert_eq!(h.dataset_folders(), ["dpo"]);
}

#[test]
fn follow_up_commands_are_written_as_this_binary_is_run() {
    // The tests run the binary from cargo's `target/`, so a next command goes through `cargo run`.
    let h = Home::new();
    let o = h.run(&["dataset", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("`cargo run --release -- dataset import FILE --name NAME`"),
        "{err}"
    );
}

#[test]
fn a_bad_name_is_a_dataset_name_set_by_the_name_flag() {
    let h = Home::new();
    let file = h.file("a.csv", "prompt,answer\nq,a\n");
    let o = h.run(&["dataset", "import", &file, "--name", "../x"]);
    assert_clean_failure(&o, &["invalid dataset name `../x`", "`--name`"]);
}

#[test]
fn mapping_flags_and_formats() {
    let h = Home::new();
    let file = h.file("flat.csv", "mid,prev,q,a\n1,,hi,hello\n2,1,more,sure\n");
    h.ok(&[
        "dataset",
        "import",
        &file,
        "--name",
        "flat",
        "--prompt-column",
        "q",
        "--answer-column",
        "a",
        "--id-column",
        "mid",
        "--parent-id-column",
        "prev",
    ]);
    let json: Value = serde_json::from_str(&h.ok(&["dataset", "show", "flat", "--json"])).unwrap();
    assert_eq!(json["train"]["statistics"]["conversations"], 1);
    assert_eq!(
        json["train"]["statistics"]["turns_per_conversation"]["2"],
        1
    );

    let o = h.run(&[
        "dataset",
        "import",
        &file,
        "--name",
        "x",
        "--prompt-column",
        "q",
        "--answer-column",
        "A ",
    ]);
    assert_clean_failure(
        &o,
        &[
            "flat.csv",
            "no column `A `",
            "did you mean `a`",
            "--answer-column",
        ],
    );

    let text = h.file("notes.csv", "body\nsome text here\n");
    let o = h.run(&["dataset", "import", &text, "--name", "t"]);
    assert_clean_failure(&o, &["cannot tell which columns", "`body`", "--format"]);
    h.ok(&[
        "dataset",
        "import",
        &text,
        "--name",
        "t",
        "--format",
        "text",
        "--answer-column",
        "body",
    ]);
    let rows = h.ok(&["dataset", "show", "t", "--sample", "1"]);
    assert!(rows.contains("answer: some text here"), "{rows}");
}

#[test]
fn bad_files_fail_cleanly_and_leave_nothing() {
    let h = Home::new();
    let cases: [(&str, &[u8], &[&str]); 4] = [
        (
            "ragged.csv",
            b"prompt,answer\nq,a\nq,a,b\n",
            &["ragged.csv", "line 3", "help:"],
        ),
        (
            "latin1.csv",
            b"prompt,answer\ncaf\xe9,a\n",
            &["latin1.csv", "UTF-8", "line 2", "iconv"],
        ),
        (
            "obj.json",
            br#"{"rows": [{"prompt": "q", "answer": "a"}]}"#,
            &["obj.json", "not a JSON array of objects", "`rows`"],
        ),
        (
            "cycle.csv",
            b"id,parent_id,prompt,answer\n1,2,q,a\n2,1,q,a\n",
            &["cycle.csv", "cycle"],
        ),
    ];
    for (name, text, needles) in cases {
        let file = h.file(name, text);
        assert_clean_failure(
            &h.run(&["dataset", "import", &file, "--name", "bad"]),
            needles,
        );
    }
    assert!(h.names().is_empty());
    assert!(h.dataset_folders().is_empty(), "{:?}", h.dataset_folders());
}

#[test]
fn two_processes_import_at_the_same_moment() {
    let h = Home::new();
    // Big enough (~3 MB each) that the conversions overlap.
    let a = h.file("a.json", alpaca(40_000));
    let b = h.file("b.json", alpaca(40_000));
    let spawn = |file: &str, name: &str| {
        h.command(&["dataset", "import", file, "--name", name])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pa, pb) = (spawn(&a, "a"), spawn(&b, "b"));
    for p in [pa, pb] {
        let o = p.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(h.names(), ["a", "b"]);

    // The same name at the same moment: exactly one wins, the other is told why, nothing is left over.
    let (pa, pb) = (spawn(&a, "same"), spawn(&b, "same"));
    let outs = [
        pa.wait_with_output().unwrap(),
        pb.wait_with_output().unwrap(),
    ];
    let wins = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(wins, 1, "{} / {}", stderr(&outs[0]), stderr(&outs[1]));
    let loser = outs.iter().find(|o| !o.status.success()).unwrap();
    assert_clean_failure(loser, &["`same` already exists"]);
    assert_eq!(h.names(), ["a", "b", "same"]);
    assert_eq!(h.dataset_folders(), ["a", "b", "same"]);
}

#[test]
fn a_deleted_registry_is_rebuilt_by_doctor() {
    let h = Home::new();
    for name in ["one", "two"] {
        let file = h.file(&format!("{name}.json"), alpaca(3));
        h.ok(&["dataset", "import", &file, "--name", name]);
    }
    let before = h.list();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!(
            "{}{suffix}",
            h.root().join("registry.sqlite").display()
        ));
    }
    let o = h.run(&["dataset", "list"]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("not in the registry (one, two)")
            && stderr(&o).contains("--rebuild-index"),
        "{}",
        stderr(&o)
    );
    assert!(h.ok(&["doctor"]).contains("not in the registry: one, two"));

    let out = h.ok(&["doctor", "--rebuild-index"]);
    assert!(out.contains("with 2 dataset(s): one, two"), "{out}");
    assert_eq!(h.list(), before);
    assert!(h.ok(&["doctor"]).ends_with("ok\n"));
    // The registry works as before: a new import and a delete.
    let file = h.file("three.json", alpaca(1));
    h.ok(&["dataset", "import", &file, "--name", "three"]);
    h.ok(&["dataset", "delete", "one"]);
    assert_eq!(h.names(), ["three", "two"]);
}

#[test]
fn a_zip_of_files_imports_as_one_dataset() {
    let h = Home::new();
    let path: PathBuf = h.dir.path().join("bundle.zip");
    let mut zip = zip_writer(&path);
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file("a.jsonl", opts).unwrap();
    zip.write_all(b"{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n").unwrap();
    zip.start_file("b.jsonl", opts).unwrap();
    zip.write_all(b"{\"messages\": [{\"role\": \"user\", \"content\": \"q2\"}, {\"role\": \"assistant\", \"content\": \"a2\"}, {\"role\": \"user\", \"content\": \"q3\"}, {\"role\": \"assistant\", \"content\": \"a3\"}]}\n").unwrap();
    zip.finish().unwrap();
    let out = h.ok(&["dataset", "import", path.to_str().unwrap(), "--name", "z"]);
    assert!(
        out.contains("3 rows, 2 conversations") && out.contains("openai (jsonl)"),
        "{out}"
    );
    let json: Value = serde_json::from_str(&h.ok(&["dataset", "show", "z", "--json"])).unwrap();
    let second = &json["files"][1];
    assert!(second["source"]
        .as_str()
        .unwrap()
        .ends_with("bundle.zip!b.jsonl"));
    let kept = h
        .root()
        .join("datasets/z")
        .join(second["original"].as_str().unwrap());
    assert!(kept.is_file(), "{}", kept.display());
}

fn zip_writer(path: &Path) -> zip::ZipWriter<std::fs::File> {
    zip::ZipWriter::new(std::fs::File::create(path).unwrap())
}

#[test]
fn doctor_finds_a_died_run_and_its_leftovers_and_repairs_them() {
    let h = Home::new();
    // A plain `train` folder killed with SIGKILL: status.json still says running, a checkpoint was being staged.
    let run = h.root().join("elsewhere/run");
    std::fs::create_dir_all(run.join("checkpoint")).unwrap();
    std::fs::create_dir_all(run.join("checkpoint.tmp-4194399")).unwrap();
    std::fs::write(
        run.join("status.json"),
        r#"{"status":"running","message":"","pid":4194399}"#,
    )
    .unwrap();
    let folder = run.display().to_string();
    let out = h.ok(&["doctor", &folder]);
    assert!(
        out.contains(&format!(
            "died: {folder}: its training process (pid 4194399) ended"
        )) && out.contains("leftover: ")
            && out.contains("checkpoint.tmp-4194399")
            && out.contains("doctor --repair"),
        "{out}"
    );
    assert!(!out.ends_with("ok\n"), "{out}");
    assert!(
        run.join("checkpoint.tmp-4194399").is_dir(),
        "reporting changes nothing"
    );

    let out = h.ok(&["doctor", "--repair", &folder]);
    assert!(
        out.contains("repaired: ") && out.contains("status failed"),
        "{out}"
    );
    assert!(!run.join("checkpoint.tmp-4194399").exists());
    assert!(run.join("checkpoint").is_dir(), "the last checkpoint stays");
    let status: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["status"], "failed");
    assert!(h.ok(&["doctor", &folder]).ends_with("ok\n"));

    let o = h.run(&["doctor", "no/such/run"]);
    assert_clean_failure(&o, &["run folder `no/such/run`", "help:"]);
}
