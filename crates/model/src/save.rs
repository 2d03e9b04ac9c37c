//! Writing a model as a Hugging Face folder, as transformers' `save_pretrained` would: the weights in f32
//! safetensors (`model.safetensors`, or shards `model-00001-of-0000N.safetensors` with
//! `model.safetensors.index.json` past [`MAX_SHARD_BYTES`]), the source's `config.json` saying `float32`, and
//! the source's tokenizer and generation files. What full fine-tuning leaves as its result.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Tensor};
use serde_json::{json, Value};

use crate::error::{read_json, Error, Result};
use crate::models::Llama;

/// Files of a backbone folder besides config and weights that a saved folder carries over when present.
pub const COPIED_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
];

/// The largest shard [`save_hf_folder`] writes: 5 GB, the Hugging Face Hub's long-standing default (a tensor
/// larger than that gets a shard of its own).
pub const MAX_SHARD_BYTES: usize = 5_000_000_000;

/// Writes `model`'s current backbone weights (trained variables included; LoRA adapters are not merged) as a
/// Hugging Face folder `dir` that transformers and [`Llama::load`] load: f32 safetensors (sharded past
/// [`MAX_SHARD_BYTES`]), `config.json` from `source` (the folder the model was loaded from) with its dtype set
/// to `float32`, and the [`COPIED_FILES`] that `source` has. A tied LM head that shares the embedding is written
/// once, as `model.embed_tokens.weight`. The folder is staged beside `dir` and swapped in whole.
pub fn save_hf_folder(model: &Llama, source: &Path, dir: &Path) -> Result<()> {
    save_hf_folder_sharded(model, source, dir, MAX_SHARD_BYTES)
}

/// [`save_hf_folder`] with shards of at most `max_shard_bytes` (each tensor whole).
pub fn save_hf_folder_sharded(
    model: &Llama,
    source: &Path,
    dir: &Path,
    max_shard_bytes: usize,
) -> Result<()> {
    let weights = model
        .backbone_weights()?
        .into_iter()
        .map(|(name, t)| Ok((name, t.detach().to_dtype(DType::F32)?.contiguous()?)))
        .collect::<Result<Vec<(String, Tensor)>>>()?;
    let has_lm_head = weights.iter().any(|(name, _)| name == "lm_head.weight");
    let config = saved_config(source, model.config().tie_word_embeddings && has_lm_head)?;
    let tmp = ferrotune_home::atomic::temp_sibling(dir);
    std::fs::create_dir_all(&tmp).map_err(|source| Error::Write {
        path: tmp.clone(),
        source,
    })?;
    let write = || -> Result<()> {
        let mut text = serde_json::to_string_pretty(&config).expect("JSON serializes");
        text.push('\n');
        write_file(&tmp.join("config.json"), text.as_bytes())?;
        for name in COPIED_FILES {
            let from = source.join(name);
            if from.is_file() {
                let to = tmp.join(name);
                std::fs::copy(&from, &to).map_err(|source| Error::Write { path: to, source })?;
            }
        }
        write_weights(&weights, &tmp, max_shard_bytes)?;
        ferrotune_home::atomic::replace_dir(&tmp, dir).map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// `source`'s `config.json` for f32 weights: `dtype` / `torch_dtype` say `float32` (`torch_dtype` is added when
/// neither is there), no `quantization_config`, and `tie_word_embeddings: false` when `untie` (a tied config
/// whose LM head has a weight of its own, which transformers would otherwise replace by the embedding).
fn saved_config(source: &Path, untie: bool) -> Result<Value> {
    let path = source.join("config.json");
    let mut config: Value = read_json(&path)?;
    let Some(fields) = config.as_object_mut() else {
        return Err(Error::Json {
            path,
            syntax: false,
            message: "the configuration is not a JSON object".into(),
        });
    };
    let mut named = false;
    for key in ["dtype", "torch_dtype"] {
        if let Some(value) = fields.get_mut(key) {
            *value = json!("float32");
            named = true;
        }
    }
    if !named {
        fields.insert("torch_dtype".into(), json!("float32"));
    }
    fields.remove("quantization_config");
    if untie {
        fields.insert("tie_word_embeddings".into(), json!(false));
    }
    Ok(config)
}

/// Groups tensors of `sizes` bytes, in order, into shards of at most `max` bytes (an oversized tensor alone).
pub fn shard_plan(sizes: &[usize], max: usize) -> Vec<std::ops::Range<usize>> {
    let mut shards = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && bytes + size > max {
            shards.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        shards.push(start..sizes.len());
    }
    shards
}

fn write_weights(weights: &[(String, Tensor)], dir: &Path, max_shard_bytes: usize) -> Result<()> {
    let sizes: Vec<usize> = weights
        .iter()
        .map(|(_, t)| t.elem_count() * t.dtype().size_in_bytes())
        .collect();
    let plan = shard_plan(&sizes, max_shard_bytes);
    if plan.len() <= 1 {
        return write_safetensors(weights, &dir.join("model.safetensors"));
    }
    let mut weight_map = BTreeMap::new();
    for (i, range) in plan.iter().enumerate() {
        let file = shard_file_name(i, plan.len());
        for (name, _) in &weights[range.clone()] {
            weight_map.insert(name.clone(), file.clone());
        }
        write_safetensors(&weights[range.clone()], &dir.join(&file))?;
    }
    let index = shard_index(&weight_map, sizes.iter().sum::<usize>());
    write_file(&dir.join("model.safetensors.index.json"), &index)
}

/// One safetensors file with transformers' `{"format": "pt"}` metadata.
fn write_safetensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let data = tensors.iter().map(|(name, t)| (name.as_str(), t));
    safetensors::serialize_to_file(data, Some(metadata), path).map_err(|e| {
        let source = match e {
            safetensors::SafeTensorError::IoError(io) => io,
            other => std::io::Error::other(other.to_string()),
        };
        Error::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// The file name of shard `i` (0-based) of `n`, as transformers names them (`model-00001-of-00003.safetensors`).
pub fn shard_file_name(i: usize, n: usize) -> String {
    format!("model-{:05}-of-{:05}.safetensors", i + 1, n)
}

/// `model.safetensors.index.json` for shards holding `weight_map` (tensor → file) of `total_size` bytes.
pub fn shard_index(weight_map: &BTreeMap<String, String>, total_size: usize) -> Vec<u8> {
    let index = json!({
        "metadata": { "total_size": total_size },
        "weight_map": weight_map,
    });
    let mut text = serde_json::to_string_pretty(&index).expect("JSON serializes");
    text.push('\n');
    text.into_bytes()
}

/// A safetensors file written one tensor at a time: the header (every name, dtype and shape, declared up
/// front) first, then each tensor's bytes in the declared order, so only one tensor is ever in memory.
pub struct SafetensorsWriter {
    path: std::path::PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    declared: Vec<(String, DType, Vec<usize>)>,
    next: usize,
}

impl SafetensorsWriter {
    /// Creates `path` and writes the header for `tensors` (with transformers' `{"format": "pt"}` metadata).
    pub fn create(path: &Path, tensors: Vec<(String, DType, Vec<usize>)>) -> Result<Self> {
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), json!({"format": "pt"}));
        let mut offset = 0usize;
        for (name, dtype, shape) in &tensors {
            let n = shape.iter().product::<usize>() * dtype.size_in_bytes();
            let code = match dtype {
                DType::F32 => "F32",
                DType::F16 => "F16",
                DType::BF16 => "BF16",
                other => {
                    return Err(Error::WriteContract(format!(
                        "cannot write `{name}` as {other:?}: only F32, F16 and BF16 are written"
                    )))
                }
            };
            header.insert(
                name.clone(),
                json!({"dtype": code, "shape": shape, "data_offsets": [offset, offset + n]}),
            );
            offset += n;
        }
        let mut header = serde_json::to_vec(&Value::Object(header)).expect("JSON serializes");
        while !header.len().is_multiple_of(8) {
            header.push(b' ');
        }
        let io = |source| Error::Write {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 22, file);
        use std::io::Write;
        out.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io)?;
        out.write_all(&header).map_err(io)?;
        Ok(SafetensorsWriter {
            path: path.to_path_buf(),
            out,
            declared: tensors,
            next: 0,
        })
    }

    /// Writes the next declared tensor (converted to its declared dtype).
    pub fn write(&mut self, name: &str, tensor: &Tensor) -> Result<()> {
        let Some((expected, dtype, shape)) = self.declared.get(self.next) else {
            return Err(Error::WriteContract(format!(
                "`{name}` was not declared in `{}`",
                self.path.display()
            )));
        };
        if expected != name || tensor.dims() != shape.as_slice() {
            return Err(Error::ShapeMismatch {
                name: name.to_string(),
                expected: shape.clone(),
                actual: tensor.dims().to_vec(),
            });
        }
        let t = tensor.to_dtype(*dtype)?.contiguous()?;
        let bytes = safetensors::View::data(&t);
        use std::io::Write;
        self.out.write_all(&bytes).map_err(|source| Error::Write {
            path: self.path.clone(),
            source,
        })?;
        self.next += 1;
        Ok(())
    }

    /// Flushes and syncs the file; every declared tensor must have been written.
    pub fn finish(self) -> Result<()> {
        if self.next != self.declared.len() {
            return Err(Error::WriteContract(format!(
                "`{}` got {} of its {} tensors",
                self.path.display(),
                self.next,
                self.declared.len()
            )));
        }
        let io = |source| Error::Write {
            path: self.path.clone(),
            source,
        };
        let file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_fill_up_to_the_limit_and_an_oversized_tensor_stands_alone() {
        assert_eq!(shard_plan(&[4, 4, 4], 100), vec![0..3]);
        assert_eq!(shard_plan(&[4, 4, 4], 8), vec![0..2, 2..3]);
        assert_eq!(shard_plan(&[20, 4, 4, 30], 10), vec![0..1, 1..3, 3..4]);
        assert!(shard_plan(&[], 10).is_empty());
    }

    #[test]
    fn the_saved_config_says_float32_and_drops_the_quantization() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.json");
        let write = |v: Value| std::fs::write(&path, v.to_string()).unwrap();
        write(
            json!({"torch_dtype": "bfloat16", "quantization_config": {"load_in_4bit": true},
                     "tie_word_embeddings": true}),
        );
        let cfg = saved_config(tmp.path(), true).unwrap();
        assert_eq!(
            cfg,
            json!({"torch_dtype": "float32", "tie_word_embeddings": false})
        );
        write(json!({"dtype": "float16", "tie_word_embeddings": true}));
        let cfg = saved_config(tmp.path(), false).unwrap();
        assert_eq!(
            cfg,
            json!({"dtype": "float32", "tie_word_embeddings": true})
        );
        write(json!({}));
        assert_eq!(
            saved_config(tmp.path(), false).unwrap(),
            json!({"torch_dtype": "float32"})
        );
        write(json!([1]));
        assert!(matches!(
            saved_config(tmp.path(), false),
            Err(Error::Json { .. })
        ));
    }
}
