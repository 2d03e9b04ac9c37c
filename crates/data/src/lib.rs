//! # ferrotune-data
//!
//! Text and datasets: the backbone's tokenizer (`tokenizer.json` + `tokenizer_config.json`), chat templates
//! rendered with Hugging Face's semantics, and (with the training issue) dataset formats, conversation assembly,
//! label masking and tokenized batches.
//!
//! *Owns*: how text becomes token ids and labels. *Must not touch*: tensors, model weights, the registry or
//! anything network. It never prints.
//!
//! Start reading at [`tokenizer::TextTokenizer`] and [`chat_template::ChatTemplate`].

pub mod chat_template;
pub mod error;
pub mod tokenizer;

pub use chat_template::{ChatTemplate, Message};
pub use error::{Error, Result};
pub use tokenizer::{GenerationDefaults, TextTokenizer, TokenIds};
