//! The model crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading a backbone, tokenizing, or running the model.
///
/// Messages start lowercase, name the thing in backticks and end with a `help:` line when there is a fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{dir}` is not a backbone folder: it has no `config.json`\nhelp: a backbone is a Hugging Face model folder (config.json, *.safetensors, tokenizer.json) or a `.gguf` file")]
    MissingConfig { dir: PathBuf },

    #[error("`{}` does not exist\nhelp: check the path; a backbone is a Hugging Face model folder (config.json, *.safetensors, tokenizer.json) or a `.gguf` file", path.display())]
    NotFound { path: PathBuf },

    #[error("`{}` is a file, not a backbone folder\nhelp: pass the folder that holds it (config.json, *.safetensors, tokenizer.json), or a `.gguf` file", path.display())]
    NotAFolder { path: PathBuf },

    #[error("cannot write `{}`: {source}{}", path.display(), write_help(source))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{}` {}: {message}", path.display(), if *syntax { "is not valid JSON" } else { "does not hold what it should" })]
    Json {
        path: PathBuf,
        /// Whether the text is not JSON at all (else it is JSON of the wrong shape: a missing or mistyped field).
        syntax: bool,
        message: String,
    },

    #[error("unsupported architecture `{name}`\nhelp: supported architectures are {supported}")]
    UnsupportedArchitecture { name: String, supported: String },

    #[error("invalid `config.json` in `{dir}`: {message}")]
    InvalidConfig { dir: PathBuf, message: String },

    #[error("`{dir}` has no weights: neither `model.safetensors` nor `model.safetensors.index.json`\nhelp: the folder must hold the weights in safetensors format")]
    MissingWeights { dir: PathBuf },

    #[error("shard `{shard}` named in `{index}` is missing\nhelp: copy every shard listed in the index into the folder")]
    MissingShard { shard: PathBuf, index: PathBuf },

    #[error("`{path}` is not a valid safetensors file ({message})\nhelp: the file is corrupt or truncated; copy it again")]
    CorruptWeights { path: PathBuf, message: String },

    #[error("tensor `{name}` is missing from the backbone weights in `{dir}`\nhelp: the weights are incomplete or of another model; copy the whole checkpoint (every `*.safetensors` file) again")]
    MissingTensor { name: String, dir: PathBuf },

    #[error("tensor `{name}` has shape {actual:?}, but `config.json` gives it {expected:?}\nhelp: the weights and `config.json` come from different models; use the config.json saved with these weights")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },

    #[error("`config.json` in `{}` says `vocab_size: {config}`, but `model.embed_tokens.weight` has {embedding} rows\nhelp: set `vocab_size` to {embedding} in config.json (transformers refuses this checkpoint too)", dir.display())]
    ConfigVocabMismatch {
        dir: PathBuf,
        config: usize,
        embedding: usize,
    },

    #[error("the tokenizer has {tokenizer} tokens but the embedding has only {embedding} rows\nhelp: the tokenizer does not belong to this model; use the tokenizer.json shipped with the weights")]
    VocabMismatch { tokenizer: usize, embedding: usize },

    #[error("invalid generation settings: {0}")]
    InvalidGeneration(String),

    #[error("unsupported dtype `{0}`\nhelp: use one of f32, bf16, f16, int8, int4, int4-dq")]
    UnsupportedDtype(String),

    #[error("int8/int4 backbones run on the CPU only so far\nhelp: run it on the CPU, or pick a float dtype (f32, bf16, f16) for the GPU")]
    QuantizedOnGpu,

    #[error("invalid adapter: {0}")]
    InvalidAdapter(String),

    /// A writer was used against its contract (a tensor not declared, a dtype it cannot write).
    #[error("cannot write the model: {0}")]
    WriteContract(String),

    #[error("full fine-tuning needs dense float32 weights, but {reason}\nhelp: set `architecture.backbone_dtype: float32` (no int8/int4 quantization) and `environment.mixed_precision: false`, or train LoRA adapters (`training.lora: true`)")]
    FullFineTuningNeedsF32 {
        /// What stands in the way (a 16-bit compute dtype, a quantized weight).
        reason: String,
    },

    #[error(transparent)]
    Data(Box<ferrotune_data::Error>),

    #[error(transparent)]
    Gguf(Box<crate::gguf::GgufError>),

    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl From<ferrotune_data::Error> for Error {
    fn from(e: ferrotune_data::Error) -> Self {
        Error::Data(Box::new(e))
    }
}

impl From<crate::gguf::GgufError> for Error {
    fn from(e: crate::gguf::GgufError) -> Self {
        Error::Gguf(Box::new(e))
    }
}

/// Result with the model crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads a file to a string, naming it on failure.
pub(crate) fn read_to_string(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and parses a JSON file, naming it on failure.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        syntax: !e.is_data(),
        message: e.to_string(),
    })
}

/// The advice for a failed write whose cause the user can fix (a full disk, a file size limit), as a `help:`
/// line; empty otherwise. Every writer's error message ends with it.
pub fn write_help(source: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match source.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            "\nhelp: the disk is full: free space (or choose another output_directory) and resume; what was complete before is kept"
        }
        ErrorKind::FileTooLarge => {
            "\nhelp: the file outgrew this process's file size limit (`ulimit -f`): raise it and resume; what was complete before is kept"
        }
        _ => "",
    }
}
