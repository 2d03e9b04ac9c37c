//! Full fine-tuning against transformers (`tools/fixtures/full_ft_step.py`): with every backbone weight a trained
//! variable ([`Llama::train_all`]), the causal-LM loss of a fixed batch and the gradient of every parameter, with
//! and without gradient checkpointing and with `freeze_layers`; one SGD step through the variables; and the
//! folder [`save_hf_folder`] writes loading back with the same logits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use ferrotune_model::kernels::cross_entropy::cross_entropy;
use ferrotune_model::save::save_hf_folder_sharded;
use ferrotune_model::weights::Weights;
use ferrotune_model::{
    save_hf_folder, CheckpointGrads, Error, ForwardOptions, Llama, ModelConfig, Quantization,
};
use ferrotune_test_support::max_diff;

const CASES: [&str; 2] = ["llama", "qwen2_tied"];
const SGD_LR: f64 = 0.1;

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/full_ft_step")
        .join(case)
}

fn load_dir(dir: &Path, dtype: DType, quantization: Quantization) -> Llama {
    let cfg = ModelConfig::from_dir(dir).unwrap();
    let weights = Weights::open(dir).unwrap();
    Llama::load(&cfg, &weights, dtype, quantization, &Device::Cpu).unwrap()
}

fn load(case: &str) -> Llama {
    load_dir(&fixture(case), DType::F32, Quantization::None)
}

struct Expected {
    tensors: HashMap<String, Tensor>,
    names: Vec<String>,
    ids: Tensor,
    labels: Vec<Vec<i64>>,
}

fn expected(case: &str) -> Expected {
    let dir = fixture(case);
    let tensors =
        candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    let names: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("parameters.json")).unwrap())
            .unwrap();
    let ids = tensors["input_ids"].to_dtype(DType::U32).unwrap();
    let labels = tensors["labels"].to_vec2().unwrap();
    Expected {
        tensors,
        names,
        ids,
        labels,
    }
}

impl Expected {
    fn scalar(&self, name: &str) -> f32 {
        self.tensors[name].to_scalar().unwrap()
    }

    fn grad(&self, name: &str) -> &Tensor {
        &self.tensors[&format!("{name}.grad")]
    }
}

/// transformers' token-averaged causal-LM loss: labels shifted by one, -100 ignored.
fn loss(model: &Llama, exp: &Expected, options: &ForwardOptions) -> Tensor {
    let (b, t) = exp.ids.dims2().unwrap();
    let (mut positions, mut targets) = (Vec::new(), Vec::new());
    for (r, row) in exp.labels.iter().enumerate() {
        for (i, &label) in row.iter().enumerate().skip(1) {
            if label != -100 {
                positions.push((r * t + i - 1) as u32);
                targets.push(label as u32);
            }
        }
    }
    let hidden = model.hidden_states_with(&exp.ids, None, options).unwrap();
    let h = hidden.dim(2).unwrap();
    let selected = hidden
        .reshape((b * t, h))
        .unwrap()
        .index_select(&Tensor::new(positions.as_slice(), &Device::Cpu).unwrap(), 0)
        .unwrap();
    let nll = cross_entropy(&model.logits(&selected).unwrap(), &targets).unwrap();
    (nll.sum_all().unwrap() / targets.len() as f64).unwrap()
}

/// The loss and each variable's gradient: the backward's, plus what checkpointed layers collected.
fn loss_and_grads(
    model: &Llama,
    vars: &[(String, Var)],
    exp: &Expected,
    options: &ForwardOptions,
) -> (f32, Vec<(String, Tensor)>) {
    let loss = loss(model, exp, options);
    let store = loss.backward().unwrap();
    let grads = vars
        .iter()
        .map(|(name, var)| {
            let main = store.get(var.as_tensor()).cloned();
            let recomputed = options.checkpointing.as_ref().and_then(|c| c.take(var));
            let grad = match (main, recomputed) {
                (Some(a), Some(b)) => (a + b).unwrap(),
                (Some(g), None) | (None, Some(g)) => g,
                (None, None) => panic!("{name} got no gradient"),
            };
            (name.clone(), grad)
        })
        .collect();
    (loss.to_scalar().unwrap(), grads)
}

/// Asserts the loss within 1e-5 (relative) and every gradient within 1e-4; returns the largest differences.
fn check(case: &str, exp: &Expected, loss: f32, grads: &[(String, Tensor)]) -> (f32, f32, f32) {
    let want = exp.scalar("loss");
    let loss_diff = ((loss - want) / want).abs();
    assert!(loss_diff <= 1e-5, "{case}: loss {loss} vs {want}");
    let (mut abs, mut rel) = (0f32, 0f32);
    for (name, g) in grads {
        let want = exp.grad(name);
        let d = max_diff(g, want);
        let scale = want
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d <= 1e-4, "{case}: gradient of {name} differs by {d}");
        (abs, rel) = (abs.max(d), rel.max(d / scale));
    }
    (loss_diff, abs, rel)
}

#[test]
fn loss_and_every_gradient_match_transformers() {
    for case in CASES {
        let (mut model, exp) = (load(case), expected(case));
        let vars = model.train_all(&[]).unwrap();
        let names: Vec<&String> = vars.iter().map(|(n, _)| n).collect();
        assert_eq!(names, exp.names.iter().collect::<Vec<_>>(), "{case}");
        let (loss, grads) = loss_and_grads(&model, &vars, &exp, &ForwardOptions::default());
        let (dl, abs, rel) = check(case, &exp, loss, &grads);
        println!("{case}: |Δloss|/loss {dl:.2e}, max |Δgrad| {abs:.2e} (relative {rel:.2e})");
    }
}

#[test]
fn gradient_checkpointing_gives_the_same_gradients() {
    for case in CASES {
        let (mut model, exp) = (load(case), expected(case));
        let vars = model.train_all(&[]).unwrap();
        let (_, plain) = loss_and_grads(&model, &vars, &exp, &ForwardOptions::default());
        let options = ForwardOptions {
            checkpointing: Some(CheckpointGrads::default()),
            ..ForwardOptions::default()
        };
        let (loss, grads) = loss_and_grads(&model, &vars, &exp, &options);
        let (_, abs, _) = check(case, &exp, loss, &grads);
        let vs_plain = grads
            .iter()
            .zip(&plain)
            .map(|((_, a), (_, b))| max_diff(a, b))
            .fold(0f32, f32::max);
        assert!(
            vs_plain <= 1e-6,
            "{case}: checkpointing changes a gradient by {vs_plain}"
        );
        println!(
            "{case} checkpointed: max |Δgrad| {abs:.2e} vs transformers, {vs_plain:.2e} vs plain"
        );
    }
}

#[test]
fn frozen_layers_get_no_variable_and_no_gradient() {
    let frozen: Vec<String> = ["embed_tokens", "layers.0.self_attn", "model.norm"]
        .map(String::from)
        .to_vec();
    for case in CASES {
        let (mut model, exp) = (load(case), expected(case));
        let vars = model.train_all(&frozen).unwrap();
        let want: Vec<&String> = exp
            .names
            .iter()
            .filter(|n| !frozen.iter().any(|f| n.contains(f.as_str())))
            .collect();
        assert_eq!(
            vars.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            want,
            "{case}"
        );
        // Layer 0 then runs on an untracked input: checkpointing starts at layer 1.
        let options = ForwardOptions {
            checkpointing: Some(CheckpointGrads::default()),
            ..ForwardOptions::default()
        };
        let loss = loss(&model, &exp, &options);
        let store = loss.backward().unwrap();
        for (name, weight) in model.backbone_weights().unwrap() {
            let trained = vars.iter().any(|(n, _)| *n == name);
            assert_eq!(weight.is_variable(), trained, "{case}: {name}");
            if !trained {
                assert!(
                    store.get(&weight).is_none(),
                    "{case}: frozen {name} got a gradient"
                );
            }
        }
        let ckpt = options.checkpointing.as_ref().unwrap();
        for (name, var) in &vars {
            let g = match store.get(var.as_tensor()) {
                Some(g) => g.clone(),
                None => ckpt.take(var).expect("a trained weight gets a gradient"),
            };
            let d = max_diff(&g, exp.grad(name));
            assert!(d <= 1e-4, "{case}: gradient of {name} differs by {d}");
        }
    }
}

/// One SGD step `p ← p − lr·g` on every variable, in place.
fn sgd_step(vars: &[(String, Var)], grads: &[(String, Tensor)]) {
    for ((_, var), (_, g)) in vars.iter().zip(grads) {
        let updated = (var.as_tensor() - (g * SGD_LR).unwrap()).unwrap();
        var.set(&updated).unwrap();
    }
}

#[test]
fn an_sgd_step_on_the_variables_updates_the_model_as_in_torch() {
    for case in CASES {
        let (mut model, exp) = (load(case), expected(case));
        let vars = model.train_all(&[]).unwrap();
        let reference = model.frozen_copy().unwrap();
        let view = model.for_inference();
        let (_, grads) = loss_and_grads(&model, &vars, &exp, &ForwardOptions::default());
        sgd_step(&vars, &grads);
        let after = loss(&model, &exp, &ForwardOptions::default());
        let (got, want) = (
            after.to_scalar::<f32>().unwrap(),
            exp.scalar("loss_after_sgd"),
        );
        assert!(
            ((got - want) / want).abs() <= 1e-5,
            "{case}: loss after SGD {got} vs {want}"
        );
        // The inference view sees the step and records no graph; the frozen copy does not see it.
        let logits = view.forward(&exp.ids, None).unwrap();
        assert!(
            !logits.track_op(),
            "{case}: the inference view tracks gradients"
        );
        // (The view takes the frozen-weight kernels, which round differently from candle's matmul.)
        let d = max_diff(&logits, &model.forward(&exp.ids, None).unwrap());
        assert!(d <= 1e-5, "{case}: the inference view differs by {d}");
        let before = reference.forward(&exp.ids, None).unwrap();
        assert!(max_diff(&before, &exp.tensors["logits"]) <= 1e-4, "{case}");
        for (name, weight) in reference.backbone_weights().unwrap() {
            assert!(
                !weight.track_op(),
                "{case}: the frozen copy's {name} is tracked"
            );
        }
    }
}

/// A trained model saved as a folder, with the logits it gives on the fixture batch.
fn trained(case: &str) -> (Llama, Tensor) {
    let (mut model, exp) = (load(case), expected(case));
    let vars = model.train_all(&[]).unwrap();
    let (_, grads) = loss_and_grads(&model, &vars, &exp, &ForwardOptions::default());
    sgd_step(&vars, &grads);
    let logits = model.for_inference().forward(&exp.ids, None).unwrap();
    (model, logits)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_saved_folder_loads_back_with_the_same_logits() {
    for case in CASES {
        let (model, logits) = trained(case);
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("source");
        ferrotune_test_support::copy_dir(&fixture(case), &source);
        std::fs::write(source.join("tokenizer.json"), "{}").unwrap();
        let out = tmp.path().join("out");
        save_hf_folder(&model, &source, &out).unwrap();
        for file in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "generation_config.json",
        ] {
            assert!(out.join(file).is_file(), "{case}: {file} missing");
        }
        assert!(!out.join("expected.safetensors").exists());
        assert_eq!(json(&out.join("config.json"))["dtype"], "float32");
        let saved = Weights::open(&out).unwrap();
        assert_eq!(saved.contains("lm_head.weight"), case == "llama", "{case}");
        assert_eq!(saved.main_dtype().as_deref(), Some("f32"));
        let reloaded = load_dir(&out, DType::F32, Quantization::None);
        let exp = expected(case);
        let d = max_diff(&reloaded.forward(&exp.ids, None).unwrap(), &logits);
        assert!(d == 0.0, "{case}: reloaded logits differ by {d}");
        // Saving again over the folder replaces it.
        save_hf_folder(&model, &source, &out).unwrap();
        assert!(out.join("model.safetensors").is_file());
    }
}

#[test]
fn a_sharded_save_writes_an_index_and_loads_back() {
    let (model, logits) = trained("qwen2_tied");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    save_hf_folder_sharded(&model, &fixture("qwen2_tied"), &out, 40_000).unwrap();
    let index = json(&out.join("model.safetensors.index.json"));
    let map = index["weight_map"].as_object().unwrap();
    assert_eq!(map.len(), expected("qwen2_tied").names.len());
    assert_eq!(index["metadata"]["total_size"], 21_792 * 4);
    let shards: std::collections::BTreeSet<&str> =
        map.values().filter_map(|v| v.as_str()).collect();
    assert!(shards.len() >= 2, "{shards:?}");
    assert!(
        shards.contains("model-00001-of-00003.safetensors"),
        "{shards:?}"
    );
    assert!(!out.join("model.safetensors").exists());
    let reloaded = load_dir(&out, DType::F32, Quantization::None);
    let ids = expected("qwen2_tied").ids;
    assert!(max_diff(&reloaded.forward(&ids, None).unwrap(), &logits) == 0.0);
}

/// With `FERROTUNE_SAVE_HF_DIR=DIR`, writes the trained `llama` case to `DIR/llama` and the tied one to
/// `DIR/qwen2_tied`, each with `ferrotune_check.safetensors` (input ids and logits) for
/// `tools/fixtures/full_ft_step.py --check-saved DIR/<case>` to compare with transformers.
#[test]
fn saved_folder_loads_in_transformers_when_asked() {
    let Some(root) = std::env::var_os("FERROTUNE_SAVE_HF_DIR") else {
        return;
    };
    for case in CASES {
        let (model, logits) = trained(case);
        let out = Path::new(&root).join(case);
        save_hf_folder(&model, &fixture(case), &out).unwrap();
        let check = HashMap::from([
            (
                "input_ids".to_string(),
                expected(case).tensors["input_ids"].clone(),
            ),
            ("logits".to_string(), logits),
        ]);
        candle_core::safetensors::save(&check, out.join("ferrotune_check.safetensors")).unwrap();
    }
}

#[test]
fn sixteen_bit_and_quantized_backbones_refuse_full_fine_tuning() {
    let dir = fixture("llama");
    for (dtype, quantization, says) in [
        (DType::BF16, Quantization::None, "computes in BF16"),
        (DType::F32, Quantization::Int8, "is quantized"),
    ] {
        let mut model = load_dir(&dir, dtype, quantization);
        let err = model.train_all(&[]).unwrap_err();
        assert!(
            matches!(err, Error::FullFineTuningNeedsF32 { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(says) && text.contains("backbone_dtype: float32"),
            "{text}"
        );
    }
    // Quantized layers that stay frozen are fine: the embedding, norms and head train.
    let mut model = load_dir(&dir, DType::F32, Quantization::Int8);
    let vars = model.train_all(&["model.layers.".to_string()]).unwrap();
    let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "model.embed_tokens.weight",
            "model.norm.weight",
            "lm_head.weight"
        ]
    );
}
