//! The registry: rebuilt from the files, shared by concurrent writers.

use ferrotune_store::{rebuild_index, Registry, Split, Store};

use crate::common::TestHome;

#[test]
fn a_deleted_registry_is_rebuilt_from_the_dataset_files() {
    let mut t = TestHome::new();
    let a = t.file("a.csv", "prompt,answer\nq,a\n");
    let b = t.file("b.jsonl", "{\"text\": \"x y\"}\n");
    let before = vec![t.import("a", &a).unwrap(), t.import("b", &b).unwrap()];
    // A crashed import leaves a temporary folder; a folder with broken metadata is reported, not fatal.
    std::fs::create_dir_all(t.home().datasets().join(".import-c-1-2-3")).unwrap();
    std::fs::create_dir_all(t.home().datasets().join("broken")).unwrap();
    std::fs::write(t.home().datasets().join("broken/dataset.json"), "{").unwrap();
    let registry = t.home().registry();
    let home = t.home();
    drop(t.store);
    std::fs::remove_file(&registry).unwrap();
    let _ = std::fs::remove_file(format!("{}-wal", registry.display()));
    let _ = std::fs::remove_file(format!("{}-shm", registry.display()));

    let store = Store::open(home.clone()).unwrap();
    assert!(store.datasets().unwrap().is_empty());
    assert_eq!(store.unindexed_datasets().unwrap(), ["a", "b", "broken"]);
    drop(store);

    let report = rebuild_index(&home).unwrap();
    assert_eq!(report.datasets, ["a", "b"]);
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].1.contains("unreadable"),
        "{:?}",
        report.skipped
    );
    assert_eq!(report.removed.len(), 1);
    let store = Store::open(home.clone()).unwrap();
    assert_eq!(store.datasets().unwrap(), before);
    assert_eq!(store.sample("b", Split::Train, 1).unwrap()[0].answer, "x y");
    assert_eq!(
        Registry::open(&registry).unwrap().version().unwrap(),
        Registry::schema_version()
    );
    // Rebuilding again (with a live registry) gives the same rows.
    drop(store);
    assert_eq!(rebuild_index(&home).unwrap().datasets, ["a", "b"]);
}

#[test]
fn concurrent_imports_of_different_datasets_all_land() {
    let t = TestHome::new();
    let home = t.home();
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let file = t.file(&format!("f{k}.csv"), format!("prompt,answer\nq{k},a{k}\n"));
            let home = home.clone();
            std::thread::spawn(move || {
                // Each thread is its own connection, like a separate process.
                let mut store = Store::open(home).unwrap();
                store
                    .import_dataset(&ferrotune_store::ImportOptions {
                        name: format!("d{k}"),
                        train: file,
                        ..Default::default()
                    })
                    .unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let names: Vec<String> = t
        .store
        .datasets()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["d0", "d1", "d2", "d3"]);
}

#[test]
fn a_corrupt_registry_names_the_fix_and_is_rebuilt() {
    let mut t = TestHome::new();
    let a = t.file("a.csv", "prompt,answer\nq,a\n");
    t.import("a", &a).unwrap();
    let home = t.home();
    drop(t.store);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", home.registry().display()));
    }
    std::fs::write(
        home.registry(),
        b"this is not a database, just sixteen+ bytes of junk",
    )
    .unwrap();
    let err = Store::open(home.clone()).err().unwrap().to_string();
    assert!(
        err.contains("registry.sqlite") && err.contains("--rebuild-index"),
        "{err}"
    );
    assert_eq!(rebuild_index(&home).unwrap().datasets, ["a"]);
    assert_eq!(
        Store::open(home).unwrap().dataset("a").unwrap().train.rows,
        1
    );
}
