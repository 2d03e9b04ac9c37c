//! The preference losses against TRL (`tools/fixtures/dpo_step.py`, trl 1.16.0; KTO-pair from H2O's formula in
//! torch): for three pairs on the tiny backbone with a PEFT adapter, the answers' log-probabilities under the
//! policy and the reference (adapters off), each loss, its rewards and every LoRA gradient.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ferrotune_data::{Sample, IGNORE_INDEX};
use ferrotune_model::{adapter, Backbone, ForwardOptions};
use ferrotune_test_support::{max_diff, model_fixture};
use ferrotune_train::objective::dpo::{preference_step, preference_step_part};
use ferrotune_train::preference::{BatchNorm, PreferenceLoss, PreferenceSettings};

const LOSSES: [(&str, PreferenceLoss); 7] = [
    ("DPOLoss", PreferenceLoss::Dpo),
    ("DPOHingeLoss", PreferenceLoss::Hinge),
    ("DPOIPOLoss", PreferenceLoss::Ipo),
    ("KTOPairLoss", PreferenceLoss::KtoPair),
    ("CPOLoss", PreferenceLoss::Cpo),
    ("SimPOLoss", PreferenceLoss::SimPo),
    ("ORPOLoss", PreferenceLoss::Orpo),
];

fn ids(expected: &HashMap<String, Tensor>, key: &str) -> Vec<u32> {
    expected[key]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Prompt then answer, the answer labelled.
fn sample(prompt: &[u32], answer: &[u32]) -> Sample {
    let input_ids: Vec<u32> = prompt.iter().chain(answer).copied().collect();
    let labels = input_ids
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if i < prompt.len() {
                IGNORE_INDEX
            } else {
                t as i64
            }
        })
        .collect();
    Sample {
        input_ids,
        labels,
        prompt_len: prompt.len(),
        bos_len: 0,
        prompt_text: String::new(),
        answer_text: String::new(),
        conversation_id: String::new(),
        row: 0,
        truncated: false,
    }
}

fn vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= tol * y.abs().max(1.0),
            "{what}: {a:?} vs {b:?}"
        );
    }
}

#[test]
fn each_preference_loss_and_its_lora_gradients_match_trl() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut backbone =
        Backbone::load_folder(&model_fixture("llama3_rope"), DType::F32, &Device::Cpu).unwrap();
    adapter::load_peft(&mut backbone.model, &dir.join("lora_step/adapter")).unwrap();
    let expected =
        candle_core::safetensors::load(dir.join("dpo_step/expected.safetensors"), &Device::Cpu)
            .unwrap();
    let (mut chosen, mut rejected) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let prompt = ids(&expected, &format!("prompt_ids.{i}"));
        chosen.push(sample(&prompt, &ids(&expected, &format!("chosen_ids.{i}"))));
        rejected.push(sample(
            &prompt,
            &ids(&expected, &format!("rejected_ids.{i}")),
        ));
    }
    let (chosen, rejected): (Vec<&Sample>, Vec<&Sample>) =
        (chosen.iter().collect(), rejected.iter().collect());
    let params = adapter::lora_parameters(&backbone.model);
    assert_eq!(params.len(), 28);
    for (name, loss) in LOSSES {
        let settings = PreferenceSettings {
            loss,
            beta: 0.2,
            simpo_gamma: 1.0,
        };
        let step = preference_step(
            &backbone.model,
            &chosen,
            &rejected,
            &settings,
            ForwardOptions::default(),
            1.0,
        )
        .unwrap();
        let l = &step.logps;
        close(
            &l.policy_chosen,
            &vec(&expected["policy_chosen_logps"]),
            1e-5,
            "policy chosen logps",
        );
        close(
            &l.policy_rejected,
            &vec(&expected["policy_rejected_logps"]),
            1e-5,
            "policy rejected logps",
        );
        if loss.needs_reference() {
            close(
                &l.reference_chosen,
                &vec(&expected["reference_chosen_logps"]),
                1e-5,
                "reference chosen logps",
            );
            close(
                &l.reference_rejected,
                &vec(&expected["reference_rejected_logps"]),
                1e-5,
                "reference rejected logps",
            );
        }
        let want = expected[&format!("{name}.loss")]
            .to_scalar::<f32>()
            .unwrap() as f64;
        close(&[step.loss.loss], &[want], 1e-5, &format!("{name} loss"));
        close(
            &step.loss.chosen_rewards,
            &vec(&expected[&format!("{name}.chosen_rewards")]),
            1e-5,
            &format!("{name} chosen rewards"),
        );
        close(
            &step.loss.rejected_rewards,
            &vec(&expected[&format!("{name}.rejected_rewards")]),
            1e-5,
            &format!("{name} rejected rewards"),
        );
        for (key, var) in &params {
            let got = step
                .grads
                .get(var.as_tensor())
                .expect("every adapter gets a gradient");
            let want = &expected[&format!("{name}.{key}.grad")];
            let scale = vec(&want.flatten_all().unwrap())
                .iter()
                .fold(0.0f64, |m, x| m.max(x.abs()));
            let d = max_diff(got, want) as f64;
            assert!(
                d <= 1e-4 * scale.max(1.0),
                "{name}: gradient of {key} differs by {d} (max |g| {scale})"
            );
        }
    }
    // Pair by pair with the batch's normalisation (how the trainer runs them): the same loss and gradients.
    let settings = PreferenceSettings {
        loss: PreferenceLoss::Orpo,
        beta: 0.2,
        simpo_gamma: 1.0,
    };
    let whole = preference_step(
        &backbone.model,
        &chosen,
        &rejected,
        &settings,
        ForwardOptions::default(),
        1.0,
    )
    .unwrap();
    let norm = BatchNorm::of(&whole.logps);
    let mut loss = 0.0;
    let mut sums: HashMap<String, Tensor> = HashMap::new();
    for i in 0..3 {
        let part = preference_step_part(
            &backbone.model,
            &chosen[i..i + 1],
            &rejected[i..i + 1],
            Some(norm),
            &settings,
            ForwardOptions::default(),
            1.0,
        )
        .unwrap();
        loss += part.loss.loss;
        for (key, var) in &params {
            let g = part.grads.get(var.as_tensor()).unwrap().clone();
            let sum = match sums.remove(key) {
                Some(prev) => (prev + g).unwrap(),
                None => g,
            };
            sums.insert(key.clone(), sum);
        }
    }
    close(&[loss], &[whole.loss.loss], 1e-6, "the parts' loss");
    for (key, var) in &params {
        let d = max_diff(&sums[key], whole.grads.get(var.as_tensor()).unwrap()) as f64;
        assert!(d <= 1e-5, "the parts' gradient of {key} differs by {d}");
    }

    // Policy = reference: DPO's loss is ln 2.
    let want = expected["DPOLoss.loss_at_reference"]
        .to_scalar::<f32>()
        .unwrap() as f64;
    assert!((want - std::f64::consts::LN_2).abs() < 1e-6);
}
