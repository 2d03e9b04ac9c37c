//! Preference tuning (`text_dpo_modeling`): pairs of a chosen and a rejected answer to one conversation, trained
//! with a loss of [`crate::preference`] on the answers' log-probabilities.
//!
//! **One pass per pair.** A pair's chosen and rejected sequences are joined into one padding-free row of separate
//! samples (block-diagonal attention, positions restarting per sample), and the pairs of a micro-batch run one
//! after the other, each normalised by the whole batch ([`BatchNorm`]) so their losses and gradients add up to
//! the batch's: one pair's activations alive at a time (KTO-pair, whose batch means couple the pairs, runs the
//! batch as one row). The reference model is the same backbone
//! with its adapters switched off ([`ferrotune_model::Llama::without_adapters`]: the weights are shared, never
//! copied), run over the same row without dropout or autograd; the losses without a reference (CPO, SimPO, ORPO)
//! skip it.
//!
//! **Gradient.** The loss is a function of each answer's summed log-probability; [`pair_loss`] gives its
//! gradient with respect to those sums, and one backward pass of Σ (token NLL × −gradient of its sequence)
//! carries it into the adapters.
//!
//! **Evaluation.** The validation pairs' loss is the validation loss, with their rewards; the metric
//! (perplexity, BLEU) and the predictions file are those of the chosen answers, as H2O LLM Studio reports them.

use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use ferrotune_data::batch::collate;
use ferrotune_data::{PreparedData, Rejected, Sample, TextTokenizer};
use ferrotune_home::Rewards;
use ferrotune_model::{ForwardOptions, Llama, Packing};

use super::{EvalSettings, Inputs, MicroBatch, MicroStep, Objective};
use crate::error::{Error, Result};
use crate::eval::{write_predictions, Evaluation, Metric};
use crate::loss::{concatenate, labelled_positions, token_nll, IGNORE_INDEX};
use crate::preference::{
    pair_loss, pair_loss_of_part, BatchNorm, PairLogps, PairLoss, PreferenceLoss,
    PreferenceSettings,
};
use crate::trainer::LoopSettings;

/// The preference objective over prepared pairs.
pub struct Dpo<'a> {
    data: &'a PreparedData,
    rejected: &'a Rejected,
    tokenizer: &'a TextTokenizer,
    preference: PreferenceSettings,
    eval: EvalSettings,
}

impl<'a> Dpo<'a> {
    /// The objective of `inputs`, whose data must hold the rejected samples.
    pub fn new(inputs: Inputs<'a>) -> Result<Self> {
        let cfg = inputs.config;
        let loss = PreferenceLoss::from_config(cfg.training.loss_function).ok_or_else(|| {
            Error::Setting(format!(
                "`training.loss_function: {}` is not a preference loss",
                cfg.training.loss_function
            ))
        })?;
        let rejected = inputs.data.rejected.as_ref().ok_or_else(|| {
            Error::Setting(
                "the data has no rejected answers\nhelp: set `dataset.rejected_answer_column`"
                    .into(),
            )
        })?;
        let eval = EvalSettings::of(&inputs)?;
        Ok(Dpo {
            data: inputs.data,
            rejected,
            tokenizer: inputs.tokenizer,
            preference: PreferenceSettings {
                loss,
                beta: cfg.training.beta,
                simpo_gamma: cfg.training.simpo_gamma,
            },
            eval,
        })
    }
}

/// The pairs of a batch joined into one row: chosen sequences first, then rejected ones.
struct PairRow {
    ids: Vec<u32>,
    packing: Packing,
    /// Flat predicting positions and their targets.
    positions: Vec<u32>,
    targets: Vec<u32>,
    /// The sequence (0..2n) of each position: chosen `i` is `i`, rejected `i` is `n + i`.
    owner: Vec<usize>,
    pairs: usize,
}

impl PairRow {
    fn new(chosen: &[&Sample], rejected: &[&Sample]) -> PairRow {
        let rows: Vec<(usize, Vec<u32>, Vec<i64>)> = chosen
            .iter()
            .chain(rejected)
            .enumerate()
            .map(|(k, s)| (k, s.input_ids.clone(), s.labels.clone()))
            .collect();
        let (ids, labels, packing) = concatenate(&rows);
        let (positions, targets) = labelled_positions(std::slice::from_ref(&labels));
        // The sequence of a predicting position is that of the token it predicts (never the next sample's:
        // every sample's first label is masked).
        let sequence = &packing.sequence_ids[0];
        let owner = positions
            .iter()
            .map(|&p| sequence[p as usize + 1] as usize - 1)
            .collect();
        debug_assert!(labels.iter().filter(|&&l| l != IGNORE_INDEX).count() == positions.len());
        PairRow {
            ids,
            packing,
            positions,
            targets,
            owner,
            pairs: chosen.len(),
        }
    }

    /// Labelled tokens per sequence.
    fn tokens(&self) -> Vec<usize> {
        let mut out = vec![0; 2 * self.pairs];
        for &o in &self.owner {
            out[o] += 1;
        }
        out
    }

    /// The differentiable token NLL of `model` over the row.
    fn nll(&self, model: &Llama, options: ForwardOptions) -> Result<Tensor> {
        let options = ForwardOptions {
            packing: Some(self.packing.clone()),
            ..options
        };
        token_nll(
            model,
            std::slice::from_ref(&self.ids),
            &self.positions,
            &self.targets,
            &options,
        )
    }

    /// Summed log-probabilities per sequence from token NLLs.
    fn sums(&self, nll: &Tensor) -> Result<Vec<f64>> {
        let values = nll.detach().to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let mut out = vec![0.0; 2 * self.pairs];
        for (&o, v) in self.owner.iter().zip(values) {
            out[o] -= v;
        }
        Ok(out)
    }

    /// The pairs' log-probabilities: the policy's from `policy_nll`, the reference's when `reference` is given.
    fn logps(&self, policy_nll: &Tensor, reference: Option<&Llama>) -> Result<PairLogps> {
        let n = self.pairs;
        let tokens = self.tokens();
        let policy = self.sums(policy_nll)?;
        let reference = match reference {
            Some(model) => self.sums(&self.nll(model, ForwardOptions::default())?)?,
            None => Vec::new(),
        };
        let split = |v: &[f64]| -> (Vec<f64>, Vec<f64>) {
            if v.is_empty() {
                (Vec::new(), Vec::new())
            } else {
                (v[..n].to_vec(), v[n..].to_vec())
            }
        };
        let (policy_chosen, policy_rejected) = split(&policy);
        let (reference_chosen, reference_rejected) = split(&reference);
        Ok(PairLogps {
            policy_chosen,
            policy_rejected,
            reference_chosen,
            reference_rejected,
            chosen_tokens: tokens[..n].to_vec(),
            rejected_tokens: tokens[n..].to_vec(),
        })
    }

    /// The per-token weights whose weighted NLL sum has the loss's gradient: −∂loss/∂(sum of the sequence).
    fn gradient_weights(&self, loss: &PairLoss, scale: f64) -> Vec<f32> {
        let n = self.pairs;
        self.owner
            .iter()
            .map(|&o| {
                let g = if o < n {
                    loss.grad_chosen[o]
                } else {
                    loss.grad_rejected[o - n]
                };
                (-g * scale) as f32
            })
            .collect()
    }
}

/// What one forward and backward pass over pairs computed.
pub struct PreferenceStep {
    pub loss: PairLoss,
    pub logps: PairLogps,
    /// The gradients of `scale` × the loss.
    pub grads: GradStore,
    /// Tokens of the joined row.
    pub tokens: usize,
}

/// The loss of the pairs (`chosen[i]`, `rejected[i]`) under `preference`, and the backward pass of `scale` × it:
/// the policy over one padding-free row of all the sequences, the reference (if the loss has one) over the same
/// row with the adapters off.
pub fn preference_step(
    model: &Llama,
    chosen: &[&Sample],
    rejected: &[&Sample],
    preference: &PreferenceSettings,
    options: ForwardOptions,
    scale: f64,
) -> Result<PreferenceStep> {
    preference_step_part(model, chosen, rejected, None, preference, options, scale)
}

/// [`preference_step`] of some pairs of a batch normalised as `norm` says (`None`: the pairs are the batch).
pub fn preference_step_part(
    model: &Llama,
    chosen: &[&Sample],
    rejected: &[&Sample],
    norm: Option<BatchNorm>,
    preference: &PreferenceSettings,
    options: ForwardOptions,
    scale: f64,
) -> Result<PreferenceStep> {
    let row = PairRow::new(chosen, rejected);
    let nll = row.nll(model, options)?;
    let reference = preference
        .loss
        .needs_reference()
        .then(|| model.without_adapters());
    let logps = row.logps(&nll, reference.as_ref())?;
    let norm = norm.unwrap_or_else(|| BatchNorm::of(&logps));
    let loss = pair_loss_of_part(preference, &logps, norm);
    let weights = Tensor::new(row.gradient_weights(&loss, scale), model.device())?;
    let grads = (nll * weights)?.sum_all()?.backward()?;
    Ok(PreferenceStep {
        loss,
        logps,
        grads,
        tokens: row.ids.len(),
    })
}

impl Dpo<'_> {
    /// The pairs of `indices` on the training or validation side, leaving out pairs with an answer that has no
    /// labelled token (cut away by `max_length`).
    fn pairs(&self, indices: &[usize], validation: bool) -> (Vec<&Sample>, Vec<&Sample>) {
        let (chosen, rejected) = if validation {
            (&self.data.validation, &self.rejected.validation)
        } else {
            (&self.data.train, &self.rejected.train)
        };
        indices
            .iter()
            .filter(|&&i| chosen[i].label_count() > 0 && rejected[i].label_count() > 0)
            .map(|&i| (&chosen[i], &rejected[i]))
            .unzip()
    }

    /// The validation pairs' loss and rewards, batch by batch.
    fn evaluate_pairs(&self, model: &Llama) -> Result<(f64, Option<Rewards>)> {
        let model = model.for_inference();
        let reference = self
            .preference
            .loss
            .needs_reference()
            .then(|| model.without_adapters());
        let all: Vec<usize> = (0..self.data.validation.len()).collect();
        let (mut loss_sum, mut pairs) = (0.0, 0usize);
        let mut parts = Vec::new();
        for chunk in all.chunks(self.eval.batch.max(1)) {
            let (chosen, rejected) = self.pairs(chunk, true);
            if chosen.is_empty() {
                continue;
            }
            let row = PairRow::new(&chosen, &rejected);
            let nll = row.nll(&model, ForwardOptions::default())?;
            let logps = row.logps(&nll, reference.as_ref())?;
            let out = pair_loss(&self.preference, &logps);
            loss_sum += out.loss * chosen.len() as f64;
            pairs += chosen.len();
            parts.push((out.rewards(), chosen.len()));
        }
        if pairs == 0 {
            return Err(Error::Setting("no validation pair has labelled tokens in both answers\nhelp: raise `tokenizer.max_length` (the answers may be cut away)".into()));
        }
        Ok((loss_sum / pairs as f64, Rewards::mean(&parts)))
    }
}

impl Objective for Dpo<'_> {
    fn units(&self) -> usize {
        self.data.train.len()
    }

    fn micro_step(
        &self,
        model: &Llama,
        mb: MicroBatch<'_>,
        settings: &LoopSettings,
        accumulate: &mut dyn FnMut(&GradStore) -> Result<()>,
    ) -> Result<MicroStep> {
        let (chosen, rejected) = self.pairs(mb.indices, false);
        if chosen.is_empty() {
            return Err(Error::Setting(format!(
                "step {}: no pair of the batch has labelled tokens in both answers\nhelp: raise `tokenizer.max_length` (the answers may be cut away)",
                mb.step
            )));
        }
        let options = ForwardOptions {
            dropout_seed: Some(mb.seed),
            intermediate_dropout: settings.intermediate_dropout as f32,
            checkpointing: mb.checkpointing.cloned(),
            ..ForwardOptions::default()
        };
        // Pair by pair (each pass holds one pair's activations), normalised by the whole batch so the parts add
        // up to it; KTO-pair's batch means couple the pairs, so it runs as one piece.
        let pieces: Vec<(usize, usize)> = if self.preference.loss == PreferenceLoss::KtoPair {
            vec![(0, chosen.len())]
        } else {
            (0..chosen.len()).map(|i| (i, i + 1)).collect()
        };
        let norm = BatchNorm {
            pairs: chosen.len(),
            chosen_tokens: PairRow::new(&chosen, &[]).tokens().iter().sum(),
        };
        let (mut loss, mut tokens, mut rewards) = (0.0, 0, Vec::new());
        for (k, &(a, b)) in pieces.iter().enumerate() {
            let options = ForwardOptions {
                dropout_seed: Some(crate::trainer::mix(mb.seed, 0xD90, k as u64)),
                ..options.clone()
            };
            let step = preference_step_part(
                model,
                &chosen[a..b],
                &rejected[a..b],
                Some(norm),
                &self.preference,
                options,
                mb.scale,
            )?;
            if !step.loss.loss.is_finite() {
                return Err(Error::NonFiniteLoss {
                    step: mb.step,
                    value: step.loss.loss,
                });
            }
            accumulate(&step.grads)?;
            loss += step.loss.loss;
            tokens += step.tokens;
            rewards.push((step.loss.rewards(), b - a));
        }
        Ok(MicroStep {
            loss,
            tokens,
            rewards: Rewards::mean(&rewards).map(|r| (r, chosen.len())),
        })
    }

    fn metric(&self) -> Metric {
        self.eval.metric
    }

    fn can_be_flat(&self) -> bool {
        self.preference.loss.can_be_flat()
    }

    fn evaluate(&self, model: &Llama, generate: bool) -> Result<Evaluation> {
        let chosen = self
            .eval
            .answers(model, self.tokenizer, &self.data.validation, generate)?;
        let (loss, rewards) = self.evaluate_pairs(model)?;
        Ok(Evaluation {
            loss,
            rewards,
            ..chosen
        })
    }

    fn notes(&self) -> Vec<String> {
        self.eval.notes.clone()
    }

    fn write_predictions(&self, path: &Path, evaluation: &Evaluation) -> Result<()> {
        write_predictions(path, self.eval.metric, &evaluation.predictions)
    }

    fn save_first_batch(&self, path: &Path, settings: &LoopSettings) -> Result<()> {
        let Some(first) = settings.sampler(self.units()).batch(Default::default()) else {
            return Ok(());
        };
        // Chosen rows first, then their rejected rows.
        let samples: Vec<Sample> = first
            .iter()
            .map(|&i| self.data.train[i].clone())
            .chain(first.iter().map(|&i| self.rejected.train[i].clone()))
            .collect();
        let all: Vec<usize> = (0..samples.len()).collect();
        let batch = collate(&samples, &all, &self.eval.padding);
        Ok(ferrotune_data::save_first_batch(
            &batch,
            self.tokenizer,
            path,
        )?)
    }
}
