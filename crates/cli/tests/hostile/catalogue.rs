//! The catalogue: each case names the hostile input it guards against and how it is checked, here or by a
//! heavier test elsewhere. `docs/hostile-inputs.md` is rendered from it.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;

use crate::lab::Lab;

/// One hostile input and what the user gets for it.
pub struct Case {
    /// `area.what`, unique.
    pub id: &'static str,
    /// One line in the user's words: the input, and what they get.
    pub guards: &'static str,
    pub check: Check,
}

pub enum Check {
    /// Checked by this suite, in its area's lab.
    Run(fn(&Lab)),
    /// Checked by a heavier test: `path/from/the/workspace.rs::fn_name`.
    Elsewhere(&'static str),
}

/// A group of cases sharing one lab.
pub struct Area {
    pub name: &'static str,
    pub title: &'static str,
    pub cases: &'static [Case],
}

/// Every area, in the order of the docs.
pub const AREAS: [Area; 5] = [
    Area {
        name: "models",
        title: "Backbone folders and GGUF files",
        cases: crate::models::CASES,
    },
    Area {
        name: "configs",
        title: "Experiment files and settings",
        cases: crate::configs::CASES,
    },
    Area {
        name: "datasets",
        title: "Dataset imports",
        cases: crate::datasets::CASES,
    },
    Area {
        name: "faults",
        title: "Generation, scoring, chat and interrupted runs",
        cases: crate::faults::CASES,
    },
    Area {
        name: "server",
        title: "The studio over HTTP",
        cases: crate::server::CASES,
    },
];

/// The area named `name`.
pub fn area(name: &str) -> &'static Area {
    AREAS.iter().find(|a| a.name == name).unwrap()
}

/// Runs every [`Check::Run`] case of `area` in one lab, each caught on its own, and fails listing every case
/// that failed; then checks that the lab's backbone and dataset are still there and usable.
pub fn run_area(area: &Area) {
    quiet_cases();
    let lab = Lab::new();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in area.cases {
        let Check::Run(check) = case.check else {
            continue;
        };
        ran += 1;
        IN_CASE.with(|c| c.set(true));
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&lab)));
        IN_CASE.with(|c| c.set(false));
        if let Err(panic) = outcome {
            failures.push(format!("{}: {}", case.id, panic_message(&*panic)));
        }
    }
    // Nothing previously good changed: the backbone still loads and the dataset still reads.
    let still_good = catch_unwind(AssertUnwindSafe(|| {
        let list = crate::lab::stdout(&lab.succeeds(&["backbone", "list", "--json"]));
        assert!(list.contains("\"tiny\""), "backbone `tiny` is gone: {list}");
        let shown =
            crate::lab::stdout(&lab.succeeds(&["dataset", "show", "good", "--sample", "1"]));
        assert!(
            shown.contains("what is 1+1?"),
            "dataset `good` changed: {shown}"
        );
    }));
    if let Err(panic) = still_good {
        failures.push(format!("(after all cases): {}", panic_message(&*panic)));
    }
    assert!(
        failures.is_empty(),
        "{} of the {ran} `{}` cases failed:\n\n{}",
        failures.len(),
        area.name,
        failures.join("\n\n")
    );
}

thread_local! {
    /// Whether this thread runs a case, whose panic is reported with the area's failures rather than printed.
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
}

/// Leaves a failing case's panic unprinted (its message is in the area's list); other panics print as usual.
fn quiet_cases() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CASE.with(Cell::get) {
                default(info);
            }
        }));
    });
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// The workspace root.
pub fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// `docs/hostile-inputs.md` as the catalogue renders it.
pub fn render() -> String {
    let all: Vec<&Case> = AREAS.iter().flat_map(|a| a.cases).collect();
    let here = all
        .iter()
        .filter(|c| matches!(c.check, Check::Run(_)))
        .count();
    let mut md = String::from(
        "# Hostile inputs: what Ferrotune refuses, and how\n\n\
         <!-- Generated from crates/cli/tests/hostile/ by \
         `FERROTUNE_BLESS=1 cargo test -p ferrotune-cli --test hostile docs`; do not edit. -->\n\n",
    );
    md.push_str(&format!(
        "Each line is a case of the hostile-input suite (`cargo test -p ferrotune-cli --test hostile`), {} in all: \
         {here} run there against the real `ferrotune` binary and the studio over loopback, {} by the heavier \
         test named beside them. A refused input ends with a non-zero exit (or a 4xx answer in the API's \
         `{{\"error\": …}}` shape) and a message that names the wrong thing (file, key, column, line) and the \
         fix; nothing panics or prints a backtrace, and the home is left exactly as it was: nothing \
         half-registered, nothing that was good changed.\n",
        all.len(),
        all.len() - here,
    ));
    for area in &AREAS {
        md.push_str(&format!(
            "\n## {} (`{}`)\n\n| case | what is guarded | checked by |\n|---|---|---|\n",
            area.title, area.name
        ));
        for case in area.cases {
            let by = match case.check {
                Check::Run(_) => "this suite".to_string(),
                Check::Elsewhere(target) => format!("`{target}`"),
            };
            md.push_str(&format!(
                "| `{}` | {} | {by} |\n",
                case.id,
                case.guards.replace('|', "\\|")
            ));
        }
    }
    md
}
