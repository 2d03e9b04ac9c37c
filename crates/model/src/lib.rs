//! # ferrotune-model
//!
//! The engine's model layer: backbones, the Llama-family decoder, tokenizers, chat templates and generation.
//!
//! *Owns*: tensors and kernels (nothing above this crate touches candle internals); reading a backbone folder
//! (`config.json`, safetensors, `tokenizer.json`, `tokenizer_config.json`, `generation_config.json`); importing a
//! GGUF file into such a folder; turning text into ids and back; producing tokens.
//!
//! *Must not touch*: the registry, HTTP, experiment configs, or files outside the backbone folder (and GGUF
//! import target) it is given. It never prints.
//!
//! Start reading at [`backbone::Backbone`] (what the CLI loads), then [`models::Llama`] (the decoder),
//! [`generation::generate`] and [`score::score_text`].

pub mod backbone;
pub mod cache;
pub mod chat_template;
pub mod config;
pub mod error;
pub mod generation;
pub mod gguf;
pub mod layers;
pub mod models;
pub mod ops;
pub mod rope;
pub mod score;
pub mod tokenizer;
pub mod weights;

pub use backbone::{parse_dtype, Backbone};
pub use candle_core::{DType, Device};
pub use chat_template::{ChatTemplate, Message};
pub use config::ModelConfig;
pub use error::{Error, Result};
pub use generation::{generate, FinishReason, Generation, GenerationConfig};
pub use models::Llama;
pub use tokenizer::TextTokenizer;
