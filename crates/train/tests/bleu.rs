//! Sentence BLEU against sacrebleu's scores (`tools/fixtures/bleu.py`).

#[test]
fn sentence_bleu_matches_sacrebleu() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bleu.json");
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let (h, r) = (
            case["hypothesis"].as_str().unwrap(),
            case["reference"].as_str().unwrap(),
        );
        let want = case["bleu"].as_f64().unwrap();
        let got = ferrotune_train::bleu::sentence_bleu(h, r);
        assert!(
            (got - want).abs() < 1e-9,
            "{h:?} vs {r:?}: {got} != sacrebleu {want}"
        );
    }
}
