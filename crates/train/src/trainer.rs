//! The training loop over tokenized samples: seeded shuffling per epoch, micro-batches with gradient
//! accumulation, clipping, the optimizer and schedule, periodic evaluation and resumable checkpoints.
//!
//! Everything random is a pure function of (seed, position): the data order of an epoch of (seed, epoch), the
//! dropout, NEFTune and token-masking draws of a micro-step of (seed, micro-step). A checkpoint therefore only
//! needs the adapters, the optimizer state and the position to continue exactly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::Tensor;
use ferrotune_model::{CheckpointGrads, Llama};

use crate::divergence::DivergenceWatch;
use crate::error::{Error, Result};
use crate::events::Event;
use ferrotune_data::batch::{pack, BatchSampler, PadOptions, Position as DataPosition};
use ferrotune_data::Sample;

use crate::loss::LossKind;
use crate::objective::{MicroBatch, Objective};
use crate::optim::{clip_grad_norm, Optimizer, OptimizerConfig, Param};
use crate::schedule::{Schedule, ScheduleKind};

/// Settings of the loop (the experiment config's training/augmentation groups, resolved).
#[derive(Debug, Clone)]
pub struct LoopSettings {
    pub batch_size: usize,
    pub epochs: usize,
    pub grad_accumulation: usize,
    pub optimizer: OptimizerConfig,
    pub learning_rate: f64,
    /// Parameter-name substrings that get `differential_learning_rate` instead.
    pub differential_learning_rate_layers: Vec<String>,
    pub differential_learning_rate: f64,
    pub schedule: ScheduleKind,
    pub warmup_epochs: f64,
    pub min_learning_rate_ratio: f64,
    /// 0 disables clipping.
    pub gradient_clip: f64,
    pub loss: LossKind,
    pub seed: u64,
    pub neftune_noise_alpha: f64,
    /// Dropout on the decoder's attention and MLP outputs (H2O's `architecture.intermediate_dropout`).
    pub intermediate_dropout: f64,
    /// Recompute each decoder layer in the backward pass instead of keeping its activations.
    pub gradient_checkpointing: bool,
    pub token_mask_probability: f64,
    /// Evaluate every this many epochs (fractions allowed).
    pub evaluation_epochs: f64,
    pub evaluate_before_training: bool,
    /// Padding of training batches (pad id, `padding_quantile`, `max_length`).
    pub padding: PadOptions,
    /// Pack several samples into each row of up to `max_length` tokens (attention stays within a sample).
    pub sample_packing: bool,
    /// Skip each epoch's last batch when it is not full (`training.drop_last_batch`).
    pub drop_last_batch: bool,
}

/// The training units: with packing, rows of several samples (first-fit decreasing); else one sample each.
pub fn packed_rows(samples: &[Sample], settings: &LoopSettings) -> Option<Vec<Vec<usize>>> {
    settings.sample_packing.then(|| {
        let lengths: Vec<usize> = samples.iter().map(|s| s.input_ids.len()).collect();
        pack(&lengths, settings.padding.max_length)
    })
}

/// Where a run is: enough to continue exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Micro-batches done since the start of training.
    pub micro_step: u64,
    /// Optimizer steps done.
    pub optimizer_step: u64,
}

/// The derived sizes of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub micro_steps_per_epoch: u64,
    pub total_micro_steps: u64,
    pub total_optimizer_steps: u64,
    pub eval_every_micro_steps: u64,
}

impl LoopSettings {
    /// Sizes for `n_train` samples.
    pub fn plan(&self, n_train: usize) -> Plan {
        let per_epoch = self.sampler(n_train).batches_per_epoch() as u64;
        let total = per_epoch * self.epochs as u64;
        let accum = self.grad_accumulation.max(1) as u64;
        let eval_every =
            ((self.evaluation_epochs * per_epoch as f64).round() as u64).clamp(1, total.max(1));
        Plan {
            micro_steps_per_epoch: per_epoch,
            total_micro_steps: total,
            total_optimizer_steps: total.div_ceil(accum),
            eval_every_micro_steps: eval_every,
        }
    }
}

impl LoopSettings {
    /// The data order: shuffled per epoch from (seed, epoch); the last partial batch kept unless
    /// `drop_last_batch`.
    pub fn sampler(&self, n_train: usize) -> BatchSampler {
        let mut sampler = BatchSampler::new(n_train, self.batch_size, self.seed);
        sampler.drop_last = self.drop_last_batch;
        sampler
    }
}

/// A seed for (seed, purpose, index).
pub fn mix(seed: u64, purpose: u64, index: u64) -> u64 {
    let mut z = seed
        ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The trainable parameters — the model's trained weights ([`crate::trained::Trained::params`]) and `own` (an
/// objective's head) — with their learning-rate multipliers.
pub fn trainable_params(
    trained: Vec<(String, candle_core::Var)>,
    own: Vec<(String, candle_core::Var)>,
    settings: &LoopSettings,
) -> Vec<Param> {
    trained
        .into_iter()
        .chain(own)
        .map(|(name, var)| {
            let differential = settings
                .differential_learning_rate_layers
                .iter()
                .any(|layer| !layer.is_empty() && name.contains(layer.as_str()));
            let lr_scale = if differential && settings.learning_rate > 0.0 {
                settings.differential_learning_rate / settings.learning_rate
            } else {
                1.0
            };
            Param {
                name,
                var,
                lr_scale,
            }
        })
        .collect()
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// `stop` was raised; the position reached is returned for a checkpoint.
    Stopped,
    /// The hooks ended the run after an evaluation ([`Hooks::early_stop`]).
    EarlyStopped,
}

/// Callbacks of the loop into the run: evaluation and checkpointing live with the caller, who owns the files.
pub trait Hooks {
    /// Evaluates the model now (returns nothing: the hook emits its own event).
    fn evaluate(&mut self, model: &Llama, position: Position, epoch: f64) -> Result<()>;
    /// Saves a resumable checkpoint at `position`.
    fn checkpoint(
        &mut self,
        model: &Llama,
        optimizer: &Optimizer,
        position: Position,
    ) -> Result<()>;
    /// Receives the loop's step events.
    fn event(&mut self, event: &Event);
    /// Whether the run should end after the evaluation just made (early stopping).
    fn early_stop(&self) -> bool {
        false
    }
}

/// Trains `model`'s adapters with `objective` (which owns the data, the collation and the loss) from `start` to
/// the end (or until `stop`).
pub fn train(
    model: &Llama,
    objective: &dyn Objective,
    settings: &LoopSettings,
    optimizer: &mut Optimizer,
    start: Position,
    stop: &AtomicBool,
    hooks: &mut dyn Hooks,
) -> Result<(Outcome, Position)> {
    let units = objective.units();
    if units == 0 {
        return Err(Error::Setting("the training set is empty".into()));
    }
    let checkpoint_grads = settings
        .gradient_checkpointing
        .then(CheckpointGrads::default);
    let plan = settings.plan(units);
    let sampler = settings.sampler(units);
    let schedule = Schedule {
        kind: settings.schedule,
        base_lr: settings.learning_rate,
        warmup_steps: (settings.warmup_epochs * plan.micro_steps_per_epoch as f64
            / settings.grad_accumulation.max(1) as f64)
            .round() as u64,
        total_steps: plan.total_optimizer_steps,
        min_lr_ratio: settings.min_learning_rate_ratio,
    };
    let accum = settings.grad_accumulation.max(1) as u64;
    let mut pos = start;
    if pos.micro_step == 0 && settings.evaluate_before_training {
        hooks.evaluate(model, pos, 0.0)?;
    }
    let mut grads: HashMap<String, Tensor> = HashMap::new();
    let mut divergence = DivergenceWatch::new(objective.can_be_flat());
    let mut window_loss = 0.0;
    let mut window_tokens = 0usize;
    let mut window_rewards = Vec::new();
    let mut window_start = Instant::now();
    while pos.micro_step < plan.total_micro_steps {
        if stop.load(Ordering::Relaxed) && pos.micro_step.is_multiple_of(accum) {
            return Ok((Outcome::Stopped, pos));
        }
        let data_pos = DataPosition {
            epoch: pos.micro_step / plan.micro_steps_per_epoch,
            step: (pos.micro_step % plan.micro_steps_per_epoch) as usize,
        };
        let indices = sampler.batch(data_pos).unwrap_or_default();
        let micro = objective.micro_step(
            model,
            MicroBatch {
                epoch: data_pos.epoch,
                indices: &indices,
                seed: mix(settings.seed, 0x57E9, pos.micro_step),
                scale: 1.0 / accum as f64,
                step: pos.optimizer_step + 1,
                checkpointing: checkpoint_grads.as_ref(),
            },
            settings,
            &mut |grad_store| {
                accumulate(&mut grads, grad_store, optimizer, checkpoint_grads.as_ref())
            },
        )?;
        let (loss_value, tokens) = (micro.loss, micro.tokens);
        window_rewards.extend(micro.rewards);
        window_loss += loss_value;
        window_tokens += tokens;
        pos.micro_step += 1;
        let boundary =
            pos.micro_step.is_multiple_of(accum) || pos.micro_step == plan.total_micro_steps;
        if boundary {
            let grad_norm = if settings.gradient_clip > 0.0 {
                clip_grad_norm(&mut grads, settings.gradient_clip)?
            } else {
                crate::optim::global_norm(&grads)?
            };
            let micro_in_step = (pos.micro_step - 1) % accum + 1;
            divergence.observe(
                pos.optimizer_step + 1,
                window_loss / micro_in_step as f64,
                grad_norm,
            )?;
            let lr = schedule.lr(pos.optimizer_step);
            optimizer.step(&grads, lr)?;
            grads.clear();
            pos.optimizer_step += 1;
            let micro = (pos.micro_step - 1) % accum + 1;
            let elapsed = window_start.elapsed().as_secs_f64();
            hooks.event(&Event::Step {
                step: pos.optimizer_step,
                total_steps: plan.total_optimizer_steps,
                samples_seen: data_pos.epoch * units as u64
                    + ((data_pos.step + 1) * settings.batch_size).min(units) as u64,
                epoch: pos.micro_step as f64 / plan.micro_steps_per_epoch as f64,
                loss: window_loss / micro as f64,
                lr,
                grad_norm,
                tokens_per_second: if elapsed > 0.0 {
                    window_tokens as f64 / elapsed
                } else {
                    0.0
                },
                step_seconds: elapsed,
                rewards: ferrotune_home::Rewards::mean(&window_rewards),
            });
            window_rewards.clear();
            window_loss = 0.0;
            window_tokens = 0;
            window_start = Instant::now();
        }
        let eval_due = pos.micro_step.is_multiple_of(plan.eval_every_micro_steps)
            || pos.micro_step == plan.total_micro_steps;
        if boundary && eval_due {
            hooks.evaluate(
                model,
                pos,
                pos.micro_step as f64 / plan.micro_steps_per_epoch as f64,
            )?;
            hooks.checkpoint(model, optimizer, pos)?;
            if hooks.early_stop() && pos.micro_step < plan.total_micro_steps {
                return Ok((Outcome::EarlyStopped, pos));
            }
        }
    }
    Ok((Outcome::Finished, pos))
}

/// Adds the gradients of one backward pass (and of the layers it recomputed) to the running sums of the
/// optimizer's parameters.
pub(crate) fn accumulate(
    grads: &mut HashMap<String, Tensor>,
    grad_store: &candle_core::backprop::GradStore,
    optimizer: &Optimizer,
    checkpoint_grads: Option<&CheckpointGrads>,
) -> Result<()> {
    for p in optimizer.params() {
        let recomputed = checkpoint_grads.and_then(|c| c.take(&p.var));
        let direct = grad_store.get(p.var.as_tensor()).map(|g| g.detach());
        let g = match (direct, recomputed) {
            (Some(a), Some(b)) => Some((a + b)?),
            (a, b) => a.or(b),
        };
        if let Some(g) = g {
            let sum = match grads.remove(&p.name) {
                Some(prev) => (prev + g)?,
                None => g,
            };
            grads.insert(p.name.clone(), sum);
        }
    }
    Ok(())
}
