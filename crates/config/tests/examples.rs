//! The example files in `examples/` load, and pass the settings checks.

use std::path::Path;

use ferrotune_config::{validate, Experiment};

#[test]
fn examples_load_and_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let cfg = Experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let report = validate(&cfg);
        assert!(
            report.errors.is_empty() && report.warnings.is_empty(),
            "{}: {report:#?}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 3, "examples found: {seen}");
}
