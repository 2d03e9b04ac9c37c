//! H2O LLM Studio's experiment files, read as they are: the keys H2O 1.14 writes that have no Ferrotune meaning
//! are accepted and reported once as a warning saying why they are ignored ([`H2O_IGNORED`]); keys whose only
//! meaning here is H2O's default behaviour are accepted at that value and refused, naming the key, at any other
//! ([`H2O_DEFAULT_ONLY`]). H2O's value conventions (`'None'` for an unset column, `lora_target_modules` as a
//! comma-separated string, floats for integers) are read by the settings' own types. Every other H2O key is a
//! Ferrotune setting of the same name (docs/settings.md's H2O table is generated from these lists).

use serde_yaml_ng::Value;

use crate::error::Issue;

/// H2O keys accepted and ignored, with why they mean nothing here.
pub const H2O_IGNORED: &[(&str, &str)] = &[
    ("environment.use_deepspeed", "DeepSpeed is PyTorch's multi-GPU engine; Ferrotune trains with its own engine"),
    ("environment.deepspeed_method", "DeepSpeed is PyTorch's multi-GPU engine; Ferrotune trains with its own engine"),
    ("environment.deepspeed_allgather_bucket_size", "DeepSpeed is PyTorch's multi-GPU engine; Ferrotune trains with its own engine"),
    ("environment.deepspeed_reduce_bucket_size", "DeepSpeed is PyTorch's multi-GPU engine; Ferrotune trains with its own engine"),
    ("environment.deepspeed_stage3_param_persistence_threshold", "DeepSpeed is PyTorch's multi-GPU engine; Ferrotune trains with its own engine"),
    ("environment.deepspeed_stage3_prefetch_bucket_size", "DeepSpeed is PyTorch's multi-GPU engine; Ferrotune trains with its own engine"),
    ("environment.huggingface_branch", "backbones are local folders; there is no Hub branch to pick"),
    ("environment.trust_remote_code", "only the built-in Llama, Mistral and Qwen2 code runs; no model code is loaded from the backbone folder"),
    ("environment.compile_model", "torch.compile has no counterpart: Ferrotune's kernels are compiled ahead of time"),
    ("environment.find_unused_parameters", "a PyTorch DDP option; Ferrotune computes gradients only for what trains"),
    ("logging.log_all_ranks", "one process writes the logs"),
    ("logging.neptune_project", "Neptune needs internet access (use `logging.logger: TensorBoard`)"),
    ("logging.wandb_project", "Weights & Biases needs internet access (use `logging.logger: TensorBoard`)"),
    ("logging.wandb_entity", "Weights & Biases needs internet access (use `logging.logger: TensorBoard`)"),
    ("tokenizer.tokenizer_kwargs", "the backbone's tokenizer.json is used as it is (always the fast tokenizer)"),
    ("training.attention_implementation", "attention is Ferrotune's own fused kernel"),
];

/// H2O keys whose one value here is H2O's default behaviour: (key, the value that is accepted, what another
/// value would need).
pub const H2O_DEFAULT_ONLY: &[(&str, &str, &str)] = &[
    ("architecture.force_embedding_gradients", "false", "training the embedding matrix beside LoRA is not supported; use full fine-tuning (`training.lora: false`), which trains it"),
    ("dataset.add_prompt_answer_tokens", "false", "adding the markers as new tokens to the vocabulary is not supported"),
    ("tokenizer.add_prompt_answer_tokens", "false", "adding the markers as new tokens to the vocabulary is not supported"),
    ("training.lora_unfreeze_layers", "", "training whole layers beside LoRA is not supported; use full fine-tuning (`training.lora: false`)"),
];

/// Whether `value` is `expected` as H2O writes it (`true`, `false`, `''`, an empty list).
fn is(value: &Value, expected: &str) -> bool {
    match value {
        Value::Bool(b) => b.to_string() == expected,
        Value::String(s) => {
            s.trim().eq_ignore_ascii_case(expected) || (expected.is_empty() && s == "None")
        }
        Value::Sequence(items) => expected.is_empty() && items.is_empty(),
        Value::Null => expected.is_empty(),
        _ => false,
    }
}

/// What reading `key` as an H2O key gives: `None` when it is not one (an ordinary setting or unknown key),
/// `Some(Ok(warning))` when it is accepted (with a warning to report, or none), `Some(Err)` when its value is
/// refused.
pub(crate) fn read(key: &str, value: &Value) -> Option<Result<Option<Issue>, Issue>> {
    if let Some((_, why)) = H2O_IGNORED.iter().find(|(k, _)| *k == key) {
        return Some(Ok(Some(Issue::new(
            key,
            format!("is an H2O LLM Studio setting and is ignored: {why}"),
        ))));
    }
    let (_, accepted, why) = H2O_DEFAULT_ONLY.iter().find(|(k, ..)| *k == key)?;
    Some(if is(value, accepted) {
        Ok(None)
    } else {
        Err(Issue::new(
            key,
            format!(
                "is an H2O LLM Studio setting Ferrotune reads only at `{}`: {why}",
                if accepted.is_empty() { "''" } else { accepted }
            ),
        ))
    })
}

/// The Ferrotune file for an experiment read from an H2O LLM Studio file: a comment naming each H2O key that
/// was ignored and why, then the experiment with every setting and its help (what `config init` writes).
pub fn import_text(cfg: &crate::Experiment, source: &str) -> String {
    let mut out = format!("# Imported from the H2O LLM Studio experiment {source}.\n");
    if cfg.ignored.is_empty() {
        out.push_str("# Every key of it is a Ferrotune setting below.\n");
    } else {
        out.push_str("# Its keys that mean nothing in Ferrotune were left out:\n");
        for issue in &cfg.ignored {
            let why = issue
                .message
                .split_once("is ignored: ")
                .map_or(issue.message.as_str(), |(_, why)| why);
            out.push_str(&format!("#   {}: {why}\n", issue.key));
        }
    }
    out.push_str(&cfg.to_yaml());
    out
}
