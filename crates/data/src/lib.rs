//! # ferrotune-data
//!
//! Text and datasets: the backbone's tokenizer (`tokenizer.json` + `tokenizer_config.json`), chat templates
//! rendered with Hugging Face's semantics, and the causal-LM data pipeline with H2O LLM Studio's semantics:
//! dataset files, checks, conversation chains, formatting, label masking, truncation, the validation split and
//! tokenized batches.
//!
//! *Owns*: how text becomes token ids and labels. *Must not touch*: tensors, model weights, the registry or
//! anything network. It never prints.
//!
//! Brief overview:
//! - [`dataset`] reads CSV, Parquet, JSON and JSONL into a [`Table`]; [`read_columns`] reads only the columns.
//! - [`settings::DatasetSettings`] holds the dataset settings (H2O's names and defaults).
//! - `checks` (internal) fails early on missing columns, empty answers, duplicate ids, missing parents and cycles.
//! - [`conversation`] chains rows by parent id; [`format`](mod@format) turns a chain into ids and labels (markers or chat
//!   template, masking, truncation); [`split`] holds the seeded split, subsampling and shuffles.
//! - [`prepare()`] runs all of that and returns [`PreparedData`].
//! - [`batch`] pads samples into [`Batch`]es (or packs them), and [`BatchSampler`] orders them resumably.
//! - [`import`] streams any supported file into the canonical table (id, parent_id, system, prompt, answer),
//!   recognising flat, Alpaca, ShareGPT, OpenAI-messages and plain-text layouts, with statistics.
//! - [`inspect`] saves the first batch, decoded, as JSON.
//!
//! Start reading at [`prepare()`], [`tokenizer::TextTokenizer`] and [`chat_template::ChatTemplate`].

pub mod batch;
pub mod chat_template;
mod checks;
pub mod conversation;
pub mod dataset;
pub mod error;
pub mod format;
pub mod import;
pub mod inspect;
pub mod labels;
pub mod predict;
mod prepare;
pub mod settings;
pub mod split;
pub mod table;
pub mod tokenizer;

pub use batch::{
    collate, collate_packed, pack, pad_token_id, Batch, BatchIter, BatchSampler, PadOptions,
    PaddingSide, Position,
};
pub use chat_template::{ChatTemplate, Message};
pub use checks::check_columns;
pub use dataset::{read_columns, read_table, validation_column, Format};
pub use error::{Error, Result};
pub use format::{Sample, IGNORE_INDEX};
pub use inspect::{dump_batch, save_first_batch, BatchDump};
pub use labels::{TargetKind, TargetSettings, Targets};
pub use predict::{prediction_prompts, PredictionInput, Prompt};
pub use prepare::{prepare, DataStats, PreparedData, Rejected, SideStats};
pub use settings::{DatasetSettings, ValidationStrategy};
pub use table::{RowOrigin, Table};
pub use tokenizer::{GenerationDefaults, TextTokenizer, TokenIds};
