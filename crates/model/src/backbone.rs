//! A backbone: a Hugging Face folder (or a `.gguf` file imported into one) loaded as model + tokenizer +
//! generation defaults, in the requested compute dtype.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::generation::GenerationConfig;
use crate::models::Llama;
use crate::quant::Quantization;
use crate::tokenizer::{GenerationDefaults, TextTokenizer};
use crate::weights::Weights;

/// Parses a compute dtype name: `f32`/`float32`, `bf16`/`bfloat16`, `f16`/`float16`.
pub fn parse_dtype(name: &str) -> Result<DType> {
    match name {
        "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" => Ok(DType::F16),
        other => Err(Error::UnsupportedDtype(other.to_string())),
    }
}

/// How a backbone's weights are kept in memory: the compute dtype, and whether the decoder layers' linear
/// weights are quantized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightFormat {
    pub compute: DType,
    pub quantization: Quantization,
}

impl From<DType> for WeightFormat {
    fn from(compute: DType) -> Self {
        Self {
            compute,
            quantization: Quantization::None,
        }
    }
}

/// Parses a `--dtype` value: a compute dtype ([`parse_dtype`]) or `int8` / `int4` (quantized linear weights,
/// computing in f32) / `int4-dq` (NF4 with double-quantized scales).
pub fn parse_weight_format(name: &str) -> Result<WeightFormat> {
    let quantized = |quantization| WeightFormat {
        compute: DType::F32,
        quantization,
    };
    match name {
        "int8" => Ok(quantized(Quantization::Int8)),
        "int4" | "nf4" => Ok(quantized(Quantization::Nf4 {
            double_quant: false,
        })),
        "int4-dq" | "nf4-dq" => Ok(quantized(Quantization::Nf4 { double_quant: true })),
        other => parse_dtype(other).map(WeightFormat::from),
    }
}

/// A loaded backbone.
pub struct Backbone {
    /// The folder the backbone was loaded from (the imported folder for a `.gguf`).
    pub dir: PathBuf,
    pub model: Llama,
    pub tokenizer: TextTokenizer,
    pub generation_defaults: GenerationDefaults,
}

impl Backbone {
    /// Loads the backbone at `path` (an HF folder, or a `.gguf` file imported into `gguf_cache` first).
    pub fn load(
        path: &Path,
        format: impl Into<WeightFormat>,
        device: &Device,
        gguf_cache: &Path,
    ) -> Result<Self> {
        let dir = resolve_folder(path, gguf_cache)?;
        Self::load_folder(&dir, format, device)
    }

    /// [`Backbone::load`] with fresh weights of the backbone's shapes instead of its stored ones when `random`
    /// is given (`architecture.pretrained: false`); the tokenizer and configuration are the folder's.
    pub fn load_initialised(
        path: &Path,
        format: impl Into<WeightFormat>,
        device: &Device,
        gguf_cache: &Path,
        random: Option<crate::weights::RandomInit>,
    ) -> Result<Self> {
        let dir = resolve_folder(path, gguf_cache)?;
        Self::load_folder_with(&dir, format.into(), device, random)
    }

    /// Loads an HF folder, layer by layer: with quantization, only one tensor at a time exists in f32.
    pub fn load_folder(
        dir: &Path,
        format: impl Into<WeightFormat>,
        device: &Device,
    ) -> Result<Self> {
        Self::load_folder_with(dir, format.into(), device, None)
    }

    fn load_folder_with(
        dir: &Path,
        format: WeightFormat,
        device: &Device,
        random: Option<crate::weights::RandomInit>,
    ) -> Result<Self> {
        if format.quantization != Quantization::None && !device.is_cpu() {
            return Err(Error::QuantizedOnGpu);
        }
        if !dir.exists() {
            return Err(Error::NotFound {
                path: dir.to_path_buf(),
            });
        }
        let cfg = ModelConfig::from_dir(dir)?;
        let tokenizer = TextTokenizer::from_dir(dir)?;
        let weights = Weights::open(dir)?.with_random_init(random);
        let model = Llama::load(&cfg, &weights, format.compute, format.quantization, device)?;
        if tokenizer.vocab_size() > model.vocab_size() {
            return Err(Error::VocabMismatch {
                tokenizer: tokenizer.vocab_size(),
                embedding: model.vocab_size(),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            model,
            tokenizer,
            generation_defaults: GenerationDefaults::from_dir(dir)?,
        })
    }

    /// Token ids that end a generation: generation_config's, else config.json's, plus the tokenizer's EOS.
    pub fn stop_token_ids(&self) -> Vec<u32> {
        let mut ids = match &self.generation_defaults.eos_token_id {
            Some(t) => t.to_vec(),
            None => self.model.config().eos_token_ids.clone(),
        };
        if let Some(id) = self
            .tokenizer
            .eos_token()
            .and_then(|t| self.tokenizer.token_id(t))
        {
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// A generation config with this backbone's stop ids and the given sampling settings.
    pub fn generation_config(&self) -> GenerationConfig {
        GenerationConfig {
            stop_token_ids: self.stop_token_ids(),
            ..GenerationConfig::default()
        }
    }
}

/// The HF folder for `path`: itself, or for a `.gguf` file the folder it is (or gets) imported into.
pub fn resolve_folder(path: &Path, gguf_cache: &Path) -> Result<PathBuf> {
    if !path.exists() {
        return Err(Error::NotFound {
            path: path.to_path_buf(),
        });
    }
    if path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        let key = gguf_cache_key(path)?;
        let dir = gguf_cache.join(&key);
        if !dir.join("config.json").is_file() {
            // Another process may be importing the same file: take the lock, then look again.
            std::fs::create_dir_all(gguf_cache).map_err(|source| Error::Io {
                path: gguf_cache.into(),
                source,
            })?;
            let lock_path = gguf_cache.join(format!(".{key}.lock"));
            let lock = std::fs::File::create(&lock_path).map_err(|source| Error::Io {
                path: lock_path.clone(),
                source,
            })?;
            lock.lock().map_err(|source| Error::Io {
                path: lock_path.clone(),
                source,
            })?;
            let imported = if dir.join("config.json").is_file() {
                Ok(())
            } else {
                crate::gguf::import_gguf(path, &dir).map(drop)
            };
            // The lock file goes with the import, failed or not (a waiter re-checks the folder once it holds
            // the lock, so removing the file under the lock loses nothing).
            let _ = std::fs::remove_file(&lock_path);
            imported?;
        }
        return Ok(dir);
    }
    if !path.is_dir() {
        return Err(Error::NotAFolder {
            path: path.to_path_buf(),
        });
    }
    Ok(path.to_path_buf())
}

/// Whether the `.gguf` file at `path` has already been imported into `gguf_cache`.
pub fn is_imported(path: &Path, gguf_cache: &Path) -> bool {
    gguf_cache_key(path).is_ok_and(|key| gguf_cache.join(key).join("config.json").is_file())
}

/// A folder name that changes when the GGUF file changes (name, size, modification time).
fn gguf_cache_key(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(format!("{stem}-{:x}-{:x}", meta.len(), mtime))
}
