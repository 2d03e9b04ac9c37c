//! # ferrotune-export
//!
//! A finished run's model, out of Ferrotune and into the tools people run models with: a merged Hugging Face
//! folder (transformers, vLLM), a GGUF with an Ollama Modelfile (llama.cpp, Ollama, LM Studio), or the LoRA
//! adapter alone as a llama.cpp adapter GGUF. [`export`] is the one entry point; the CLI's `ferrotune export`
//! and the studio's export jobs call it.
//!
//! *Owns*: what an export folder holds (weights, config, tokenizer files, chat template, generation settings,
//! model card, Modelfile), its staging and free-space check. The tensor maths and file formats it uses live in
//! `ferrotune-model` (`merge`, `save::SafetensorsWriter`, `gguf::export`, `gguf::vocab`).
//!
//! *Must not touch*: the registry (the store resolves experiment names to run folders), the run folder (it
//! only reads it), HTTP.
//!
//! Start reading at [`export`], then [`hf`] and [`gguf`].

pub mod card;
pub mod error;
pub mod gguf;
pub mod hf;
pub mod modelfile;
pub mod source;
pub mod stage;
pub mod template;

use std::path::PathBuf;
use std::time::Instant;

pub use error::{Error, Result};
pub use ferrotune_model::gguf::export::GgufType;
pub use source::RunSource;

use ferrotune_model::DType;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// A merged Hugging Face folder.
    Hf,
    /// A merged GGUF and an Ollama Modelfile.
    Gguf,
    /// The LoRA adapter alone, as a llama.cpp adapter GGUF.
    GgufAdapter,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 3] = [
        ExportFormat::Hf,
        ExportFormat::Gguf,
        ExportFormat::GgufAdapter,
    ];

    /// The name on the command line and in the API (`hf`, `gguf`, `gguf-adapter`).
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Hf => "hf",
            ExportFormat::Gguf => "gguf",
            ExportFormat::GgufAdapter => "gguf-adapter",
        }
    }

    /// What it is, in words.
    pub fn label(self) -> &'static str {
        match self {
            ExportFormat::Hf => "merged model (Hugging Face)",
            ExportFormat::Gguf => "GGUF (llama.cpp, Ollama)",
            ExportFormat::GgufAdapter => "LoRA adapter (llama.cpp GGUF)",
        }
    }

    pub fn parse(name: &str) -> Option<ExportFormat> {
        ExportFormat::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The float type of a merged Hugging Face folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportDtype {
    Float32,
    Bfloat16,
    Float16,
}

impl ExportDtype {
    pub const ALL: [ExportDtype; 3] = [
        ExportDtype::Float32,
        ExportDtype::Bfloat16,
        ExportDtype::Float16,
    ];

    /// transformers' name (`torch_dtype` in config.json).
    pub fn name(self) -> &'static str {
        match self {
            ExportDtype::Float32 => "float32",
            ExportDtype::Bfloat16 => "bfloat16",
            ExportDtype::Float16 => "float16",
        }
    }

    pub fn parse(name: &str) -> Option<ExportDtype> {
        ExportDtype::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn dtype(self) -> DType {
        match self {
            ExportDtype::Float32 => DType::F32,
            ExportDtype::Bfloat16 => DType::BF16,
            ExportDtype::Float16 => DType::F16,
        }
    }

    /// The type of weights stored as safetensors' `f32` / `bf16` / `f16` (others: none).
    fn of_stored(name: &str) -> Option<ExportDtype> {
        match name {
            "f32" => Some(ExportDtype::Float32),
            "bf16" => Some(ExportDtype::Bfloat16),
            "f16" => Some(ExportDtype::Float16),
            _ => None,
        }
    }
}

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The folder to write (must not exist, or be empty).
    pub out: PathBuf,
    pub format: ExportFormat,
    /// Merged folder's dtype; `None`: the backbone's stored dtype (float16 for a run on an int8/int4 backbone).
    pub dtype: Option<ExportDtype>,
    pub gguf_type: GgufType,
    /// Largest safetensors shard.
    pub max_shard_bytes: usize,
    /// Write the Ollama Modelfile beside a GGUF.
    pub modelfile: bool,
}

impl ExportOptions {
    /// The defaults for `out` and `format`: stored dtype, q8_0, 5 GB shards, a Modelfile.
    pub fn new(out: PathBuf, format: ExportFormat) -> ExportOptions {
        ExportOptions {
            out,
            format,
            dtype: None,
            gguf_type: GgufType::Q8_0,
            max_shard_bytes: ferrotune_model::save::MAX_SHARD_BYTES,
            modelfile: true,
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportSummary {
    pub format: &'static str,
    /// The folder written.
    pub out: PathBuf,
    /// Its files, relative to `out`, with their sizes.
    pub files: Vec<(String, u64)>,
    /// The type written (`float16`, `q4_k_m`, `f32`).
    pub kind: String,
    /// Weights the adapter changed.
    pub merged_modules: usize,
    pub seconds: f64,
    pub warnings: Vec<String>,
}

/// Progress of an export: `done` of `total` tensors written.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// Exports `source` as `options` say, reporting progress per tensor.
pub fn export(
    source: &RunSource,
    options: &ExportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportSummary> {
    let start = Instant::now();
    let (kind, merged_modules, warnings) = match options.format {
        ExportFormat::Hf => hf::export_hf(source, options, progress)?,
        ExportFormat::Gguf => gguf::export_gguf(source, options, progress)?,
        ExportFormat::GgufAdapter => gguf::export_adapter(source, options)?,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&options.out).map_err(error::io(&options.out))? {
        let entry = entry.map_err(error::io(&options.out))?;
        let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
        files.push((entry.file_name().to_string_lossy().into_owned(), len));
    }
    files.sort();
    Ok(ExportSummary {
        format: options.format.name(),
        out: options.out.clone(),
        files,
        kind,
        merged_modules,
        seconds: start.elapsed().as_secs_f64(),
        warnings,
    })
}

/// A size like `5GB`, `500MB`, `2GiB`, `1000000` (bytes), as transformers' `max_shard_size` reads it.
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = num * mult;
    (bytes >= 1.0).then_some(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_transformers() {
        assert_eq!(parse_size("5GB"), Some(5_000_000_000));
        assert_eq!(parse_size("500MB"), Some(500_000_000));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("1.5 kb"), Some(1500));
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("5XB"), None);
        assert_eq!(parse_size("0"), None);
        for f in ExportFormat::ALL {
            assert_eq!(ExportFormat::parse(f.name()), Some(f));
        }
        for d in ExportDtype::ALL {
            assert_eq!(ExportDtype::parse(d.name()), Some(d));
        }
    }
}
