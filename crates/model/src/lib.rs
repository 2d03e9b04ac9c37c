//! # ferrotune-model
//!
//! The engine's model layer: backbones, the Llama-family decoder, tokenizers, chat templates and generation.
//!
//! *Owns*: tensors and kernels (nothing above this crate touches candle internals); reading a backbone folder
//! (`config.json`, safetensors, `generation_config.json`; the tokenizer comes from `ferrotune-data`);
//! importing a GGUF file into such a folder; producing tokens.
//!
//! *Must not touch*: the registry, HTTP, experiment configs, or files outside the backbone folder (and GGUF
//! import target) it is given. It never prints.
//!
//! Start reading at [`backbone::Backbone`] (what the CLI loads), then [`models::Llama`] (the decoder),
//! [`generation::generate`] and [`score::score_text`]; [`quant`] keeps int8/NF4 weights for [`layers::Linear`].

pub mod adapter;
pub mod backbone;
pub mod cache;
pub mod config;
pub mod describe;
pub mod error;
pub mod generation;
pub mod gguf;
pub mod kernels;
pub mod layers;
pub mod lora;
pub mod merge;
pub mod models;
pub mod ops;
pub mod quant;
pub mod rope;
pub mod save;
pub mod score;
pub mod threads;
pub mod weights;

pub use backbone::{parse_dtype, parse_weight_format, Backbone, WeightFormat};
pub use candle_core::{DType, Device, Tensor};
pub use config::ModelConfig;
pub use describe::{check_folder, describe_folder, FolderSummary};
pub use error::{Error, Result};
pub use ferrotune_data::{chat_template, tokenizer, ChatTemplate, Message, TextTokenizer};
pub use generation::{generate, generate_until, FinishReason, Generation, GenerationConfig};
pub use models::{AdapterWeights, CheckpointGrads, DecodeRow, ForwardOptions, Llama, Packing};
pub use quant::Quantization;
pub use save::save_hf_folder;

/// The error for a backbone without a chat template.
pub fn chat_template_missing() -> Error {
    Error::from(ferrotune_data::Error::NoChatTemplate)
}
