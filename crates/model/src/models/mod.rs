//! Model families. Llama, Mistral and Qwen2 share one decoder (`llama.rs`); their differences (biases, sliding
//! window, rope scaling, tied head) are settled in [`crate::config::ModelConfig`].

pub mod llama;

pub use llama::{ForwardOptions, Llama, Packing};
