//! What a backbone folder holds, read from `config.json` and the safetensors headers (the weights are mapped,
//! never read): for the studio's backbone pages and `backbone list`.

use std::path::Path;

use crate::config::HfConfig;
use crate::weights::Weights;

/// A backbone folder at a glance.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FolderSummary {
    /// `architectures[0]` of `config.json` (else its `model_type`).
    pub architecture: Option<String>,
    pub hidden_size: Option<u64>,
    pub layers: Option<u64>,
    /// Parameters stored in the safetensors files.
    pub parameters: Option<u64>,
    /// The dtype holding most parameters (lowercase safetensors name, e.g. `bf16`), else `torch_dtype`.
    pub dtype: Option<String>,
    /// Bytes of the folder's files.
    pub size_bytes: u64,
}

/// Describes the backbone folder `dir` as far as its files can be read (a missing or unreadable part leaves its
/// fields empty; [`crate::ModelConfig::from_dir`] and [`Weights::open`] say what is wrong with it).
pub fn describe_folder(dir: &Path) -> FolderSummary {
    let config: Option<HfConfig> = crate::error::read_json(&dir.join("config.json")).ok();
    let torch_dtype: Option<String> = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("torch_dtype")?.as_str().map(String::from));
    let weights = Weights::open(dir).ok();
    let size_bytes = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    FolderSummary {
        architecture: config.as_ref().and_then(|c| {
            c.architectures
                .as_ref()
                .and_then(|a| a.first().cloned())
                .or_else(|| c.model_type.clone())
        }),
        hidden_size: config.as_ref().map(|c| c.hidden_size as u64),
        layers: config.as_ref().map(|c| c.num_hidden_layers as u64),
        parameters: weights
            .as_ref()
            .map(Weights::parameter_count)
            .filter(|&n| n > 0),
        dtype: weights
            .as_ref()
            .and_then(Weights::main_dtype)
            .or(torch_dtype),
        size_bytes,
    }
}

/// Checks, as loading does but without reading the weights, that `dir` holds a backbone this crate runs: its
/// `config.json` names a supported architecture with valid settings, its safetensors headers are whole (every
/// shard present, no file cut short), and every tensor the model reads is there with the shape the config gives it.
pub fn check_folder(dir: &Path) -> crate::Result<()> {
    let config = crate::ModelConfig::from_dir(dir)?;
    let weights = Weights::open(dir)?;
    let embed = weights.shape("model.embed_tokens.weight")?;
    if embed.len() != 2 || embed[1] != config.hidden_size {
        return Err(crate::Error::ShapeMismatch {
            name: "model.embed_tokens.weight".into(),
            expected: vec![config.vocab_size, config.hidden_size],
            actual: embed,
        });
    }
    if embed[0] != config.vocab_size {
        return Err(crate::Error::ConfigVocabMismatch {
            dir: dir.to_path_buf(),
            config: config.vocab_size,
            embedding: embed[0],
        });
    }
    let has_lm_head = weights.contains("lm_head.weight");
    for (name, expected) in crate::models::tensors::expected_tensors(&config, has_lm_head) {
        let actual = weights.shape(&name)?;
        if actual != expected {
            return Err(crate::Error::ShapeMismatch {
                name,
                expected,
                actual,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r20_the_checked_tensors_are_the_ones_the_fixtures_store() {
        for case in ["llama3_rope", "mistral_sharded", "qwen2_tied"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(case);
            check_folder(&dir).unwrap();
            let config = crate::ModelConfig::from_dir(&dir).unwrap();
            let weights = Weights::open(&dir).unwrap();
            let has_lm_head = weights.contains("lm_head.weight");
            let mut expected: Vec<String> =
                crate::models::tensors::expected_tensors(&config, has_lm_head)
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect();
            let mut stored: Vec<String> = weights.names().map(String::from).collect();
            expected.sort();
            stored.sort();
            assert_eq!(expected, stored, "{case}");
        }
    }
}
