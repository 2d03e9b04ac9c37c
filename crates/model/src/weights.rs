//! Safetensors weights of a backbone folder: `model.safetensors`, or shards listed in
//! `model.safetensors.index.json`. Files are memory-mapped and tensors loaded one at a time, in the requested
//! dtype, so a caller can build (and later quantize) the model layer by layer without the whole file in memory.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::tensor::{Dtype as StDtype, TensorInfo};

use crate::error::{Error, Result};

struct Shard {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
}

/// Memory-mapped safetensors files of one backbone, indexed by tensor name.
pub struct Weights {
    dir: PathBuf,
    shards: Vec<Shard>,
    index: HashMap<String, (usize, TensorInfo)>,
    random: Option<RandomInit>,
}

/// Fresh weights instead of the stored ones (H2O LLM Studio's `architecture.pretrained: false`, transformers'
/// `from_config`): the folder's names and shapes, values drawn as transformers' `_init_weights` does for the
/// Llama family — normal(0, `std`) for linear and embedding weights, ones for RMSNorm weights, zeros for biases —
/// seeded per tensor name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomInit {
    pub seed: u64,
    /// config.json's `initializer_range` (0.02 when absent).
    pub std: f64,
}

impl RandomInit {
    /// The init of the backbone folder `dir` (its `initializer_range`) with `seed`.
    pub fn for_folder(dir: &Path, seed: u64) -> RandomInit {
        let std = std::fs::read(dir.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["initializer_range"].as_f64())
            .unwrap_or(0.02);
        RandomInit { seed, std }
    }

    fn tensor(&self, name: &str, shape: &[usize], device: &Device) -> Result<Tensor> {
        use rand::SeedableRng;
        use rand_distr::Distribution;
        let n: usize = shape.iter().product();
        if name.ends_with("norm.weight") {
            return Ok(Tensor::ones(shape, DType::F32, device)?);
        }
        if name.ends_with(".bias") {
            return Ok(Tensor::zeros(shape, DType::F32, device)?);
        }
        // FNV-1a of the name: each tensor its own reproducible stream.
        let salt = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ salt);
        let normal = rand_distr::Normal::new(0.0f32, self.std as f32)
            .map_err(|e| candle_core::Error::Msg(format!("initializer_range {}: {e}", self.std)))?;
        let values: Vec<f32> = (0..n).map(|_| normal.sample(&mut rng)).collect();
        Ok(Tensor::from_vec(values, shape, device)?)
    }
}

impl Weights {
    /// Opens the safetensors weights of the backbone folder `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let files = if index_path.is_file() {
            shard_files(&index_path, dir)?
        } else if single.is_file() {
            vec![single]
        } else {
            return Err(Error::MissingWeights {
                dir: dir.to_path_buf(),
            });
        };
        let mut shards = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        for path in files {
            let file = File::open(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            // SAFETY: the file is only read; a concurrent writer would be a user error that at worst yields
            // garbage values, which is what any reader of the file would see.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            let (header_len, metadata) =
                safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| {
                    Error::CorruptWeights {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })?;
            let shard_id = shards.len();
            for (name, info) in metadata.tensors() {
                index.insert(name, (shard_id, info.clone()));
            }
            shards.push(Shard {
                path,
                mmap,
                data_start: 8 + header_len,
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            shards,
            index,
            random: None,
        })
    }

    /// These weights' names and shapes with fresh values ([`RandomInit`]) instead of the stored ones.
    pub fn with_random_init(mut self, init: Option<RandomInit>) -> Self {
        self.random = init;
        self
    }

    /// The backbone folder the weights are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the weights hold a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Names of all tensors.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Names of all tensors in storage order: by file, then by position in the file.
    pub fn names_in_file_order(&self) -> Vec<String> {
        let mut names: Vec<(&usize, usize, &String)> = self
            .index
            .iter()
            .map(|(name, (shard, info))| (shard, info.data_offsets.0, name))
            .collect();
        names.sort();
        names.into_iter().map(|(_, _, n)| n.clone()).collect()
    }

    /// The on-disk shape of `name`.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.info(name)?.shape.clone())
    }

    /// The dtype the weights are stored in (of the embedding, as representative).
    pub fn stored_dtype(&self) -> Option<DType> {
        self.index
            .get("model.embed_tokens.weight")
            .or_else(|| self.index.values().next())
            .and_then(|(_, info)| candle_dtype(info.dtype))
    }

    /// The dtype tensor `name` is stored in (`None`: no such tensor, or a dtype candle has not).
    pub fn dtype_of(&self, name: &str) -> Option<DType> {
        self.index
            .get(name)
            .and_then(|(_, info)| candle_dtype(info.dtype))
    }

    /// Total bytes of all tensors on disk.
    pub fn stored_bytes(&self) -> usize {
        self.index
            .values()
            .map(|(_, i)| i.data_offsets.1 - i.data_offsets.0)
            .sum()
    }

    /// Parameters of all tensors (the product of each shape).
    pub fn parameter_count(&self) -> u64 {
        self.index
            .values()
            .map(|(_, i)| i.shape.iter().product::<usize>() as u64)
            .sum()
    }

    /// The dtype that holds the most parameters, as safetensors names it in lowercase (`f32`, `bf16`, …);
    /// buffers such as position ids may have another.
    pub fn main_dtype(&self) -> Option<String> {
        let mut by_dtype: HashMap<String, u64> = HashMap::new();
        for (_, info) in self.index.values() {
            *by_dtype
                .entry(format!("{:?}", info.dtype).to_lowercase())
                .or_default() += info.shape.iter().product::<usize>() as u64;
        }
        by_dtype
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(d, _)| d)
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.index
            .get(name)
            .map(|(_, info)| info)
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
                dir: self.dir.clone(),
            })
    }

    /// Loads tensor `name` converted to `dtype`, checking its shape when `expected` is given.
    pub fn load(
        &self,
        name: &str,
        expected: Option<&[usize]>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let (shard_id, info) = self.index.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            dir: self.dir.clone(),
        })?;
        if let Some(expected) = expected {
            if info.shape != expected {
                return Err(Error::ShapeMismatch {
                    name: name.to_string(),
                    expected: expected.to_vec(),
                    actual: info.shape.clone(),
                });
            }
        }
        if let Some(init) = &self.random {
            return Ok(init.tensor(name, &info.shape, device)?.to_dtype(dtype)?);
        }
        let shard = &self.shards[*shard_id];
        let stored = candle_dtype(info.dtype).ok_or_else(|| Error::CorruptWeights {
            path: shard.path.clone(),
            message: format!("tensor `{name}` has unsupported dtype {:?}", info.dtype),
        })?;
        let (start, end) = info.data_offsets;
        let bytes = &shard.mmap[shard.data_start + start..shard.data_start + end];
        let tensor = Tensor::from_raw_buffer(bytes, stored, &info.shape, device)?;
        // The tensor owns a copy now: drop the file pages from this process's resident set, so loading a big
        // backbone does not also keep the whole file resident (peak memory stays near what the model needs).
        // SAFETY: the mapping is read-only and file-backed; after MADV_DONTNEED a later read re-faults the same
        // bytes from the file, so no reader can observe a change.
        let _ = unsafe {
            shard.mmap.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                shard.data_start + start,
                end - start,
            )
        };
        Ok(tensor.to_dtype(dtype)?)
    }
}

fn candle_dtype(dtype: StDtype) -> Option<DType> {
    Some(match dtype {
        StDtype::F32 => DType::F32,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::F64 => DType::F64,
        StDtype::I64 => DType::I64,
        StDtype::U32 => DType::U32,
        StDtype::U8 => DType::U8,
        _ => return None,
    })
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

fn shard_files(index_path: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let index: ShardIndex = crate::error::read_json(index_path)?;
    let mut names: Vec<&String> = index.weight_map.values().collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::MissingShard {
                    shard: path,
                    index: index_path.to_path_buf(),
                })
            }
        })
        .collect()
}

/// Writes `tensors` to the safetensors file `path`; a failed write names the file (and says when the disk is full).
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    fn io_of(e: candle_core::Error) -> std::result::Result<std::io::Error, candle_core::Error> {
        match e {
            candle_core::Error::Io(io) => Ok(io),
            candle_core::Error::SafeTensor(safetensors::SafeTensorError::IoError(io)) => Ok(io),
            candle_core::Error::WithBacktrace { inner, .. } => io_of(*inner),
            other => Err(other),
        }
    }
    candle_core::safetensors::save(tensors, path).map_err(|e| match io_of(e) {
        Ok(source) => Error::Write {
            path: path.to_path_buf(),
            source,
        },
        Err(other) => Error::Candle(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_names_the_file_and_a_full_disk_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let t = Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap();
        let tensors = HashMap::from([("w".to_string(), t)]);
        let path = tmp.path().join("missing/adapter_model.safetensors");
        let err = save_safetensors(&tensors, &path).unwrap_err();
        assert!(matches!(err, Error::Write { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot write `{}`: ", path.display())),
            "{err}"
        );
        // What a full disk (ENOSPC, 28) or a file size limit (EFBIG, 27) gives on Linux.
        for (code, help) in [(28, "the disk is full"), (27, "ulimit -f")] {
            let err = Error::Write {
                path: path.clone(),
                source: std::io::Error::from_raw_os_error(code),
            };
            let text = err.to_string();
            assert!(text.contains("\nhelp: ") && text.contains(help), "{text}");
            assert_eq!(text.lines().count(), 2, "{text}");
        }
    }
}
