//! Model families. Llama, Mistral and Qwen2 share one decoder (`llama.rs`); their differences (biases, sliding
//! window, rope scaling, tied head) are settled in [`crate::config::ModelConfig`].

pub mod batched;
pub mod checkpointing;
pub mod llama;
mod options;
pub(crate) mod tensors;
pub mod trainable;

pub use batched::{AdapterWeights, DecodeRow};
pub use checkpointing::CheckpointGrads;
pub use llama::{ForwardOptions, Llama, Packing};
