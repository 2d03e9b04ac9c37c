//! GGUF import: turn a llama.cpp `.gguf` file into a Hugging Face model folder.
//!
//! [`import_gguf`] writes `config.json`, a float32 `model.safetensors` (HF tensor names, llama.cpp's
//! Q/K RoPE permutation undone), `tokenizer.json`, `tokenizer_config.json` and
//! `generation_config.json`: the same folder transformers would build from the file in memory with
//! `from_pretrained(dir, gguf_file=...)`, so the rest of the engine only ever loads HF folders.
//!
//! Supported: `general.architecture` `llama` (Llama, Mistral, SmolLM, ... as llama.cpp writes
//! them) and `qwen2`; tensors of type F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q2_K..Q6_K
//! (dequantized by candle); tokenizers `gpt2` (byte-level BPE) and `llama` (SentencePiece as BPE
//! with byte fallback).
//!
//! The header is read and checked in full before anything is written, and the folder is assembled
//! in a temporary sibling directory that is renamed into place at the end, so a failed import
//! leaves nothing behind.

mod config;
pub mod export;
mod reader;
mod tensors;
mod tokenizer;
mod types;
pub mod vocab;
pub mod writer;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

pub use config::SUPPORTED_ARCHITECTURES;
pub use reader::{GgufFile, TensorInfo};
pub use tokenizer::SUPPORTED_TOKENIZERS;
pub use types::{block_layout, ggml_id, ggml_type_name, Value, SUPPORTED_GGML_TYPES};

/// Errors of the GGUF importer. Each message is a lowercase first line naming the thing in
/// backticks, then a `help:` line with the fix.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read `{}`: {source}\nhelp: check that the file exists and is readable", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot write `{}`: {source}\nhelp: check that the output folder's parent is writable and the disk has space", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("`{}` is a folder, not a `.gguf` file\nhelp: a Hugging Face model folder needs no import: register it as it is (`backbone register DIR --name NAME`) or pass it to `--model`; to import, pass the `.gguf` file", path.display())]
    IsAFolder { path: PathBuf },

    #[error("`{}` is not a GGUF file: it starts with {} instead of the magic `GGUF`\nhelp: pass a `.gguf` file as written by llama.cpp (convert_hf_to_gguf.py / llama-quantize); a Hugging Face folder needs no import", path.display(), hex(start))]
    NotGguf { path: PathBuf, start: Vec<u8> },

    #[error("`{}` is GGUF version {version}, which this importer cannot read\nhelp: GGUF versions 1 to 3 are supported; re-convert the model with llama.cpp's convert_hf_to_gguf.py", path.display())]
    UnsupportedVersion { path: PathBuf, version: u32 },

    #[error("`{}` is truncated: {what} needs at least {needed} bytes at offset {offset}, but the file is {file_size} bytes long\nhelp: the download or copy was cut short; fetch the file again and check its size", path.display())]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
        needed: u64,
        file_size: u64,
    },

    #[error("`{}` is not a valid GGUF file: {detail} (at byte {offset})\nhelp: the file is corrupt; download or convert it again", path.display())]
    Malformed {
        path: PathBuf,
        offset: u64,
        detail: String,
    },

    #[error("`{}` has no metadata key `{key}`, which the import needs\nhelp: re-convert the model with a current llama.cpp convert_hf_to_gguf.py, which writes this key", path.display())]
    MissingKey { path: PathBuf, key: String },

    #[error("metadata key `{key}` in `{}` is {found}, expected {expected}\nhelp: the file was written by a non-standard tool; re-convert it with llama.cpp's convert_hf_to_gguf.py", path.display())]
    WrongKeyType {
        path: PathBuf,
        key: String,
        expected: &'static str,
        found: &'static str,
    },

    #[error("`{}` holds a `{architecture}` model, and the GGUF importer supports only {}\nhelp: use the model's original Hugging Face checkpoint instead of the GGUF, or a GGUF of a supported architecture", path.display(), list(SUPPORTED_ARCHITECTURES))]
    UnsupportedArchitecture { path: PathBuf, architecture: String },

    #[error("tensor `{tensor}` in `{}` has ggml type `{ggml_type}`, which the importer cannot dequantize\nhelp: supported types are {}; use a GGUF quantized to one of them (e.g. Q8_0 or Q4_K_M), or an F16 one", path.display(), list(SUPPORTED_GGML_TYPES))]
    UnsupportedTensorType {
        path: PathBuf,
        tensor: String,
        ggml_type: String,
    },

    #[error("tensor `{tensor}` of type `{ggml_type}` could not be dequantized: {source}\nhelp: the tensor data is corrupt; download or convert the file again")]
    Dequantize {
        tensor: String,
        ggml_type: String,
        source: Box<candle_core::Error>,
    },

    #[error("`{}` has no tensor `{tensor}`, which the model needs\nhelp: the file is incomplete or not a plain causal LM; re-convert it with llama.cpp's convert_hf_to_gguf.py", path.display())]
    MissingTensor { path: PathBuf, tensor: String },

    #[error("`{}` has a tensor `{tensor}` that a plain `{architecture}` model does not have\nhelp: this is a variant the importer does not know (vision tower, MoE, extra heads); use the model's Hugging Face checkpoint instead", path.display())]
    UnexpectedTensor {
        path: PathBuf,
        tensor: String,
        architecture: &'static str,
    },

    #[error("tensor `{tensor}` in `{}` has shape {found:?}, expected {expected} from the metadata\nhelp: the metadata and the tensors disagree; the file is corrupt or written by a non-standard tool", path.display())]
    TensorShape {
        path: PathBuf,
        tensor: String,
        expected: String,
        found: Vec<usize>,
    },

    #[error("the hyper-parameters in `{}` are inconsistent: {detail}\nhelp: the file was written by a non-standard tool; re-convert it with llama.cpp's convert_hf_to_gguf.py", path.display())]
    BadHyperparameters { path: PathBuf, detail: String },

    #[error("`{}` uses RoPE scaling `{kind}`, which the importer cannot express in config.json\nhelp: supported are linear, yarn and Llama 3 scaling; use the model's Hugging Face checkpoint instead", path.display())]
    UnsupportedRopeScaling { path: PathBuf, kind: String },

    #[error("`{}` has a `{model}` tokenizer (`tokenizer.ggml.model`); the importer builds only {}\nhelp: use the model's Hugging Face checkpoint, whose tokenizer.json can be loaded directly", path.display(), list(SUPPORTED_TOKENIZERS))]
    UnsupportedTokenizer { path: PathBuf, model: String },

    #[error("the tokenizer metadata in `{}` is unusable: {detail}\nhelp: re-convert the model with llama.cpp's convert_hf_to_gguf.py", path.display())]
    BadTokenizer { path: PathBuf, detail: String },

    #[error("output folder `{}` already exists and is not empty\nhelp: choose a new folder, or delete this one first", path.display())]
    OutputExists { path: PathBuf },
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing (the file is empty)".into();
    }
    let h: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("bytes `{}`", h.join(" "))
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What [`import_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// `general.architecture` of the file (`llama`, `qwen2`).
    pub architecture: String,
    /// The transformers class written into config.json (`LlamaForCausalLM`, `Qwen2ForCausalLM`).
    pub hf_architecture: String,
    /// `general.name`, when the file has one.
    pub model_name: Option<String>,
    /// Parameters written to model.safetensors (a tied lm_head is not counted twice).
    pub n_params: usize,
    /// Tensors written to model.safetensors.
    pub tensors: usize,
    /// Rows of the embedding = `vocab_size` in config.json.
    pub vocab_size: usize,
    pub n_layers: usize,
    pub hidden_size: usize,
    pub tie_word_embeddings: bool,
    /// How many of the file's tensors had each ggml type (e.g. `{"F32": 61, "Q4_1": 210, "Q8_0": 1}`).
    pub ggml_types: BTreeMap<String, usize>,
    /// `tokenizer.ggml.model` and `tokenizer.ggml.pre` (e.g. `gpt2`, `smollm`).
    pub tokenizer_model: String,
    pub tokenizer_pre: Option<String>,
    pub has_chat_template: bool,
    /// The folder written (`out_dir`).
    pub out_dir: PathBuf,
    /// Bytes of model.safetensors.
    pub safetensors_bytes: u64,
    /// Things the import did that a user may want to know (e.g. an unknown pre-tokenizer name).
    pub warnings: Vec<String>,
}

/// Import `gguf_path` into a Hugging Face folder at `out_dir` (created; must not exist or be empty).
pub fn import_gguf(gguf_path: &Path, out_dir: &Path) -> Result<ImportSummary, GgufError> {
    if gguf_path.is_dir() {
        return Err(GgufError::IsAFolder {
            path: gguf_path.to_path_buf(),
        });
    }
    let file = GgufFile::open(gguf_path)?;
    let mut warnings = Vec::new();
    let arch = config::architecture(&file)?;
    let h = config::read_hparams(&file, arch, &mut warnings)?;
    let plan = tensors::plan(&file, &h)?;
    let model_name = file.opt_str("general.name")?.map(str::to_string);

    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GgufError::Write { path, source }
    };
    if out_dir.exists() {
        let mut entries = fs::read_dir(out_dir).map_err(io(out_dir))?;
        if entries.next().is_some() {
            return Err(GgufError::OutputExists {
                path: out_dir.to_path_buf(),
            });
        }
    }
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io(&parent))?;
    let leaf = out_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    let tmp = TempDir::create(parent.join(format!(
        ".{leaf}.gguf-import-{}-{}",
        std::process::id(),
        IMPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )))?;

    let tok = tokenizer::build(&file, &tmp.path, h.context_length, &mut warnings)?;
    if tok.n_tokens != h.vocab_rows {
        warnings.push(format!(
            "the vocabulary has {} tokens but `token_embd.weight` has {} rows; config.json uses {}",
            tok.n_tokens, h.vocab_rows, h.vocab_rows
        ));
    }
    write_json(
        &tmp.path.join("tokenizer_config.json"),
        &tok.tokenizer_config,
    )?;
    write_json(
        &tmp.path.join("config.json"),
        &config::config_json(&h, &tok.special_ids),
    )?;
    let mut generation = json!({});
    let eos = tok.special_ids["eos_token_id"];
    for (name, id) in &tok.special_ids {
        if *name != "unk_token_id" && id.is_some() {
            generation[*name] = json!(id);
        }
    }
    if let (Some(eos), false) = (eos, tok.extra_eos.is_empty()) {
        let all: Vec<u32> = std::iter::once(eos)
            .chain(tok.extra_eos.iter().copied())
            .collect();
        generation["eos_token_id"] = json!(all);
    }
    write_json(&tmp.path.join("generation_config.json"), &generation)?;

    let st_path = tmp.path.join("model.safetensors");
    let n_params = tensors::write_safetensors(&file, &plan, &st_path)?;
    let safetensors_bytes = fs::metadata(&st_path).map_err(io(&st_path))?.len();

    if out_dir.exists() {
        fs::remove_dir(out_dir).map_err(io(out_dir))?; // empty, checked above
    }
    fs::rename(&tmp.path, out_dir).map_err(io(out_dir))?;
    tmp.disarm();

    let mut ggml_types = BTreeMap::new();
    for t in &file.tensors {
        *ggml_types.entry(t.type_name()).or_insert(0) += 1;
    }
    Ok(ImportSummary {
        architecture: arch.gguf_name().to_string(),
        hf_architecture: arch.hf_class().to_string(),
        model_name,
        n_params,
        tensors: plan.len(),
        vocab_size: h.vocab_rows,
        n_layers: h.n_layers,
        hidden_size: h.hidden,
        tie_word_embeddings: h.tied,
        ggml_types,
        tokenizer_model: tok.model,
        tokenizer_pre: tok.pre,
        has_chat_template: tok.tokenizer_config.get("chat_template").is_some(),
        out_dir: out_dir.to_path_buf(),
        safetensors_bytes,
        warnings,
    })
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), GgufError> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON serializes");
    text.push('\n');
    fs::write(path, text).map_err(|source| GgufError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Numbers the temp folders of concurrent imports within one process.
static IMPORTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A scratch directory removed on drop unless disarmed (after it was renamed into place).
struct TempDir {
    path: PathBuf,
    armed: bool,
}

impl TempDir {
    fn create(path: PathBuf) -> Result<Self, GgufError> {
        if path.exists() {
            let _ = fs::remove_dir_all(&path); // left over by a killed import that had the same id
        }
        fs::create_dir(&path).map_err(|source| GgufError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(TempDir { path, armed: true })
    }
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
