//! One LoRA training step against transformers + PEFT + torch.optim (`tools/fixtures/lora_step.py`): the loss,
//! every adapter gradient, and the parameters after one step of each optimizer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use ferrotune_model::{adapter, Backbone, ForwardOptions};
use ferrotune_test_support::{max_diff, model_fixture};
use ferrotune_train::loss::{batch_loss, LossKind};
use ferrotune_train::optim::{clip_grad_norm, Optimizer, OptimizerConfig, OptimizerKind, Param};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Setup {
    backbone: Backbone,
    expected: HashMap<String, Tensor>,
    ids: Vec<Vec<u32>>,
    labels: Vec<Vec<i64>>,
}

fn setup(base_case: &str, fixture_dir: &Path) -> Setup {
    let mut backbone =
        Backbone::load_folder(&model_fixture(base_case), DType::F32, &Device::Cpu).unwrap();
    adapter::load_peft(&mut backbone.model, &fixture_dir.join("adapter")).unwrap();
    let expected =
        candle_core::safetensors::load(fixture_dir.join("expected.safetensors"), &Device::Cpu)
            .unwrap();
    let ids: Vec<Vec<u32>> = expected["input_ids"]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec2()
        .unwrap();
    let labels: Vec<Vec<i64>> = expected["labels"].to_vec2().unwrap();
    Setup {
        backbone,
        expected,
        ids,
        labels,
    }
}

fn grads_of(s: &Setup, kind: LossKind) -> (f32, HashMap<String, Tensor>) {
    let out = batch_loss(
        &s.backbone.model,
        &s.ids,
        &s.labels,
        kind,
        &ForwardOptions::default(),
    )
    .unwrap();
    let store = out.loss.backward().unwrap();
    let grads = adapter::lora_parameters(&s.backbone.model)
        .into_iter()
        .map(|(name, var)| {
            (
                name,
                store
                    .get(var.as_tensor())
                    .expect("every adapter gets a gradient")
                    .clone(),
            )
        })
        .collect();
    (out.loss.to_scalar::<f32>().unwrap(), grads)
}

fn check_loss_and_grads(base_case: &str, dir: &Path) {
    let s = setup(base_case, dir);
    let (loss, grads) = grads_of(&s, LossKind::TokenAveraged);
    let want = s.expected["loss"].to_scalar::<f32>().unwrap();
    assert!(
        ((loss - want) / want).abs() <= 1e-5,
        "{}: loss {loss} vs {want}",
        dir.display()
    );
    let mut checked = 0;
    for (name, g) in &grads {
        let want = &s.expected[&format!("{name}.grad")];
        let d = max_diff(g, want);
        assert!(
            d <= 1e-4,
            "{}: gradient of {name} differs by {d}",
            dir.display()
        );
        checked += 1;
    }
    assert!(checked >= 28, "{checked} gradients checked");
}

#[test]
fn loss_and_lora_gradients_match_peft() {
    check_loss_and_grads("llama3_rope", &fixture("lora_step"));
    check_loss_and_grads("qwen2_tied", &fixture("lora_step_qwen2"));
}

#[test]
fn rslora_and_dora_gradients_match_peft() {
    for (base_case, dir) in [
        ("llama3_rope", "lora_step"),
        ("qwen2_tied", "lora_step_qwen2"),
    ] {
        check_loss_and_grads(base_case, &fixture(dir).join("rslora"));
        check_loss_and_grads(base_case, &fixture(dir).join("dora"));
    }
}

#[test]
fn forward_with_a_loaded_peft_adapter_matches_and_sample_averaging() {
    let s = setup("llama3_rope", &fixture("lora_step"));
    let flat: Vec<u32> = s.ids.iter().flatten().copied().collect();
    let ids = Tensor::from_vec(flat, (s.ids.len(), s.ids[0].len()), &Device::Cpu).unwrap();
    let logits = s.backbone.model.forward(&ids, None).unwrap();
    assert!(max_diff(&logits, &s.expected["logits"]) <= 1e-4);
    let out = batch_loss(
        &s.backbone.model,
        &s.ids,
        &s.labels,
        LossKind::SampleAveraged,
        &ForwardOptions::default(),
    )
    .unwrap();
    let want = s.expected["loss_sample_averaged"]
        .to_scalar::<f32>()
        .unwrap();
    assert!((out.loss.to_scalar::<f32>().unwrap() - want).abs() / want <= 1e-5);
}

fn optimizer_step_matches(
    kind: OptimizerKind,
    lr: f64,
    suffix: &str,
    steps: usize,
    clip: Option<f64>,
) {
    let s = setup("llama3_rope", &fixture("lora_step"));
    let params: Vec<Param> = adapter::lora_parameters(&s.backbone.model)
        .into_iter()
        .map(|(name, var)| Param {
            name,
            var,
            lr_scale: 1.0,
        })
        .collect();
    let mut opt = Optimizer::new(OptimizerConfig::new(kind, 0.01), params.clone());
    for _ in 0..steps {
        let (_, mut grads) = grads_of(&s, LossKind::TokenAveraged);
        if let Some(fraction) = clip {
            let norm = clip_grad_norm(&mut grads, f64::INFINITY).unwrap();
            let want = s.expected["grad_norm"].to_scalar::<f32>().unwrap() as f64;
            assert!(
                (norm - want).abs() / want < 1e-4,
                "grad norm {norm} vs {want}"
            );
            clip_grad_norm(&mut grads, fraction * norm).unwrap();
        }
        opt.step(&grads, lr).unwrap();
    }
    // RMSprop's first step is ≈ 10·lr·sign(g): float32 rounding of tiny gradients is amplified 10× more than in
    // Adam's ≈ lr·sign(g) first step.
    let tolerance = if kind == OptimizerKind::RmsProp {
        1e-4
    } else {
        1e-5
    };
    for p in &params {
        let want = &s.expected[&format!("{}.{suffix}", p.name)];
        let d = max_diff(p.var.as_tensor(), want);
        assert!(
            d <= tolerance,
            "{kind:?}: {} differs by {d} after {steps} step(s)",
            p.name
        );
    }
}

#[test]
fn one_adamw_step_matches_torch() {
    optimizer_step_matches(OptimizerKind::AdamW, 1e-2, "after_adamw", 1, None);
    optimizer_step_matches(OptimizerKind::AdamW, 1e-2, "after_adamw_2", 2, None);
}

#[test]
fn other_optimizers_match_torch() {
    optimizer_step_matches(OptimizerKind::Adam, 1e-2, "after_adam", 1, None);
    optimizer_step_matches(OptimizerKind::Sgd, 1e-1, "after_sgd", 1, None);
    optimizer_step_matches(OptimizerKind::RmsProp, 1e-2, "after_rmsprop", 1, None);
    optimizer_step_matches(OptimizerKind::Adadelta, 1.0, "after_adadelta", 1, None);
}

#[test]
fn gradient_clipping_matches_torch() {
    optimizer_step_matches(OptimizerKind::AdamW, 1e-2, "after_clip_adamw", 1, Some(0.5));
}

#[test]
fn gradient_checkpointing_gives_the_same_gradients() {
    for (base_case, dir) in [
        ("llama3_rope", "lora_step"),
        ("qwen2_tied", "lora_step_qwen2"),
    ] {
        let s = setup(base_case, &fixture(dir));
        let store = ferrotune_model::CheckpointGrads::default();
        let options = ForwardOptions {
            checkpointing: Some(store.clone()),
            ..Default::default()
        };
        let out = batch_loss(
            &s.backbone.model,
            &s.ids,
            &s.labels,
            LossKind::TokenAveraged,
            &options,
        )
        .unwrap();
        let direct = out.loss.backward().unwrap();
        let mut checked = 0;
        for (name, var) in adapter::lora_parameters(&s.backbone.model) {
            let g = match (direct.get(var.as_tensor()), store.take(&var)) {
                (Some(a), Some(b)) => (a + b).unwrap(),
                (Some(a), None) => a.clone(),
                (None, Some(b)) => b,
                (None, None) => panic!("{name} got no gradient"),
            };
            let d = max_diff(&g, &s.expected[&format!("{name}.grad")]);
            assert!(
                d <= 1e-4,
                "{dir}: checkpointed gradient of {name} differs by {d}"
            );
            checked += 1;
        }
        assert!(checked >= 28);
    }
}
