//! # ferrotune-train
//!
//! The fine-tuning engine: LoRA training on a frozen backbone, optimizers and schedules as torch computes them,
//! causal-LM losses, evaluation (loss, perplexity, BLEU), checkpoints and exact resume.
//!
//! *Owns*: the training loop's state (optimizer moments, schedule position, data position), what a run writes
//! into its output folder (named by [`ferrotune_home::RunDir`]), the objective of each problem type, and how a
//! trained run is loaded back. *Must not touch*: the registry, HTTP, the terminal (it emits events; listeners
//! print).
//!
//! Start reading at the entry point [`run::run`] (one experiment, stage by stage), then
//! [`objective::Objective`] (what a problem type decides: collation, loss, evaluation, predictions),
//! [`trainer::train`] (the loop), [`load::TrainedModel`] (loading a run's backbone and adapter back),
//! [`settings`] (the config as the engine reads it), [`optim::Optimizer`] and [`loss::batch_loss`].

pub mod bleu;
pub mod checkpoint;
pub mod divergence;
pub mod error;
pub mod eval;
pub mod events;
pub mod head;
mod hooks;
pub mod judge;
pub mod load;
pub mod loss;
pub mod memory;
pub mod objective;
pub mod optim;
pub mod predict;
pub mod preference;
pub mod run;
pub mod schedule;
pub mod scores;
pub mod settings;
pub mod trackers;
pub mod trained;
pub mod trainer;

pub use error::{Error, Result};
