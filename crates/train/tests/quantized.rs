//! Training on a quantized backbone (`architecture.backbone_dtype: int8 | int4`): the run finishes with finite
//! losses, the frozen weights are stored as asked, and the adapter has the float run's PEFT layout.

use ferrotune_test_support::{adapter_tensors, max_tensors_diff};

use crate::common::{assert_trained, experiment, plain, train, PLAIN};

#[test]
fn int8_and_int4_backbones_train_the_float_adapter_layout_with_finite_losses() {
    let dir = tempfile::tempdir().unwrap();
    let (plain_dir, _) = plain();
    let float = adapter_tensors(plain_dir);
    for (name, dtype, double_quantization, storage) in [
        ("q8", "int8", "false", "as int8"),
        ("q4", "int4", "false", "as NF4,"),
        ("q4dq", "int4", "true", "as NF4 with double quantization"),
    ] {
        let overrides: Vec<(&str, &str)> = PLAIN
            .iter()
            .copied()
            .chain([
                ("architecture.backbone_dtype", dtype),
                ("architecture.double_quantization", double_quantization),
            ])
            .collect();
        let cfg = experiment(dir.path(), name, &overrides);
        let ran = train(&cfg, false, None);
        assert_trained(&ran, name);
        assert!(
            ran.logs()
                .iter()
                .any(|l| l.starts_with("frozen weights in memory") && l.contains(storage)),
            "{name}: {:?}",
            ran.logs()
        );
        let adapter = adapter_tensors(&cfg.output_dir());
        // Same names (checked by max_tensors_diff) and shapes as the float adapter, other values.
        for (tensor, values) in &adapter {
            assert_eq!(values.len(), float[tensor].len(), "{name}: {tensor}");
        }
        let diff = max_tensors_diff(&float, &adapter);
        assert!(
            diff > 0.0,
            "{name}: the quantized backbone trained the float adapter"
        );
    }
}
