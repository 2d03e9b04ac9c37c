//! # ferrotune-train
//!
//! The fine-tuning engine: LoRA training on a frozen backbone, optimizers and schedules as torch computes them,
//! causal-LM losses, evaluation (loss, perplexity, BLEU), checkpoints and exact resume.
//!
//! *Owns*: the training loop's state (optimizer moments, schedule position, data position) and the files of a
//! run's output directory. *Must not touch*: the registry, HTTP, the terminal (it emits events; listeners print).
//!
//! Start reading at [`optim::Optimizer`], [`loss::batch_loss`], [`bleu::sentence_bleu`].

pub mod bleu;
pub mod checkpoint;
pub mod error;
pub mod eval;
pub mod events;
pub mod loss;
pub mod memory;
pub mod optim;
pub mod run;
pub mod schedule;
pub mod trainer;

pub use error::{Error, Result};
