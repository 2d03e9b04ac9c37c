//! The classification and regression metrics against scikit-learn's (fixture: `tools/fixtures/scores.py`).

use ferrotune_train::scores::{accuracy, auc, log_loss, mae, mse, Outputs};

#[test]
fn metrics_equal_scikit_learn() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/scores.json"
    ))
    .unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let rows = |key: &str| -> Vec<Vec<f64>> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect()
                })
                .collect()
        };
        let scores = rows("scores");
        let targets: Vec<Vec<f32>> = rows("targets")
            .into_iter()
            .map(|r| r.into_iter().map(|v| v as f32).collect())
            .collect();
        let outputs = match case["outputs"].as_str().unwrap() {
            "binary" => Outputs::Binary,
            "classes" => Outputs::Classes,
            _ => Outputs::Values,
        };
        let close = |name: &str, ours: f64| {
            let theirs = case[name].as_f64().unwrap();
            assert!(
                // Targets are kept in f32, as the head trains on them.
                (ours - theirs).abs() <= 1e-6 * theirs.abs().max(1.0),
                "{name} ({:?}): ours {ours}, scikit-learn {theirs}",
                outputs
            );
        };
        if outputs == Outputs::Values {
            close("mse", mse(&scores, &targets));
            close("mae", mae(&scores, &targets));
        } else {
            close("auc", auc(outputs, &scores, &targets));
            close("accuracy", accuracy(outputs, &scores, &targets));
            close("log_loss", log_loss(outputs, &scores, &targets));
        }
    }
}
