//! The hostile-input catalogue (issue 20): bad backbone folders, experiment files, datasets, interrupted and
//! odd requests, and hostile HTTP, each run against the real `ferrotune` binary (and `ferrotune serve` over
//! loopback). A refusal must exit non-zero (or answer 4xx JSON), name the wrong thing and the fix, never panic,
//! and leave the home as it was. One test per area runs its cases and lists every failing one;
//! `docs/hostile-inputs.md` is rendered from the catalogue (`FERROTUNE_BLESS=1` rewrites it).
//!
//! Heavier cases (kill -9, SIGTERM, a full disk, two processes at once, divergence) are pointers to the tests
//! that already cover them; `elsewhere_targets_exist` keeps the pointers true.

#[path = "hostile/catalogue.rs"]
mod catalogue;
#[path = "hostile/configs.rs"]
mod configs;
#[path = "hostile/datasets.rs"]
mod datasets;
#[path = "hostile/faults.rs"]
mod faults;
#[path = "hostile/lab.rs"]
mod lab;
#[path = "hostile/models.rs"]
mod models;
#[path = "hostile/server.rs"]
mod server;

use catalogue::{area, run_area, workspace, Check, AREAS};

#[test]
fn models_are_refused_with_the_fix() {
    run_area(area("models"));
}

#[test]
fn configs_are_refused_with_the_fix() {
    run_area(area("configs"));
}

#[test]
fn datasets_are_refused_with_the_fix() {
    run_area(area("datasets"));
}

#[test]
fn faults_are_handled() {
    run_area(area("faults"));
}

#[test]
fn server_answers_hostile_requests_with_json_errors() {
    run_area(area("server"));
}

#[test]
fn the_catalogue_has_60_cases_with_unique_ids_of_their_area() {
    let mut ids = std::collections::HashSet::new();
    let mut total = 0;
    for a in &AREAS {
        for case in a.cases {
            total += 1;
            assert!(ids.insert(case.id), "two cases are `{}`", case.id);
            assert!(
                case.id.starts_with(&format!("{}.", a.name)),
                "`{}` is not named after its area `{}`",
                case.id,
                a.name
            );
            assert!(
                !case.guards.contains('\n') && case.guards.len() > 20,
                "`{}`: guards is one line in words",
                case.id
            );
        }
    }
    assert!(total >= 60, "only {total} cases");
}

#[test]
fn the_lab_catches_a_changed_home_and_a_success() {
    let lab = lab::Lab::new();
    let before = lab::Snapshot::of(&lab.home());
    std::fs::write(lab.home().join("datasets/good/stray.txt"), "x").unwrap();
    let caught =
        std::panic::catch_unwind(|| before.assert_same(&lab::Snapshot::of(&lab.home()), "a write"));
    assert!(caught.is_err(), "a new file in the home went unseen");
    std::fs::remove_file(lab.home().join("datasets/good/stray.txt")).unwrap();
    let lab = std::panic::AssertUnwindSafe(&lab);
    let caught = std::panic::catch_unwind(|| lab.refuses(&["dataset", "list"], &[]));
    assert!(caught.is_err(), "a command that succeeds is no refusal");
}

#[test]
fn elsewhere_targets_exist() {
    for case in AREAS.iter().flat_map(|a| a.cases) {
        let Check::Elsewhere(target) = case.check else {
            continue;
        };
        let (file, name) = target
            .split_once("::")
            .unwrap_or_else(|| panic!("`{}`: `{target}` is not `path.rs::fn_name`", case.id));
        let text = std::fs::read_to_string(workspace().join(file))
            .unwrap_or_else(|e| panic!("`{}`: {file}: {e}", case.id));
        assert!(
            text.contains(&format!("fn {name}(")),
            "`{}`: {file} has no `fn {name}`",
            case.id
        );
    }
}

#[test]
fn docs_list_every_case() {
    let path = workspace().join("docs/hostile-inputs.md");
    let expected = catalogue::render();
    if std::env::var_os("FERROTUNE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/hostile-inputs.md is stale; run `FERROTUNE_BLESS=1 cargo test -p ferrotune-cli --test hostile docs` to regenerate it"
    );
}
