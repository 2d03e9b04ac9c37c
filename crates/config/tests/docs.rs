//! `docs/settings.md` is generated; this fails when it is stale. `FERROTUNE_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn settings_md_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/settings.md");
    let expected = ferrotune_config::settings_markdown();
    if std::env::var_os("FERROTUNE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/settings.md is stale; run `FERROTUNE_BLESS=1 cargo test -p ferrotune-config` to regenerate it"
    );
}

#[test]
fn every_setting_has_a_row() {
    let md = ferrotune_config::settings_markdown();
    for s in ferrotune_config::settings() {
        assert!(md.contains(&format!("| `{}` |", s.key)), "{}", s.key);
    }
    // Pipes in values are escaped so the table keeps its columns.
    assert!(md.contains("`<\\|system\\|>`"));
}
