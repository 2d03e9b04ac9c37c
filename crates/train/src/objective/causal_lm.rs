//! Causal language modelling (`text_causal_language_modeling`): next-token cross-entropy on the answers, as H2O
//! LLM Studio trains it; evaluated by validation loss with perplexity or BLEU of generated answers.

use std::path::Path;

use candle_core::backprop::GradStore;
use ferrotune_data::batch::{collate, collate_packed};
use ferrotune_data::{PreparedData, TextTokenizer};
use ferrotune_model::{ForwardOptions, Llama, Packing};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{EvalSettings, Inputs, MicroBatch, MicroStep, Objective};
use crate::error::{Error, Result};
use crate::eval::{write_predictions, Evaluation, Metric};
use crate::loss::{batch_loss_normalized, concatenate, unpadded_rows, LossKind, Normalization};
use crate::trainer::{mix, packed_rows, LoopSettings};

/// One forward/backward pass of a micro-step: dropout seed, rows, labels, packing.
type Piece = (u64, Vec<Vec<u32>>, Vec<Vec<i64>>, Option<Packing>);

/// The causal-LM objective over prepared data.
pub struct CausalLm<'a> {
    data: &'a PreparedData,
    tokenizer: &'a TextTokenizer,
    /// With `training.sample_packing`: the samples of each packed row.
    rows: Option<Vec<Vec<usize>>>,
    eval: EvalSettings,
}

impl<'a> CausalLm<'a> {
    /// The objective of `inputs` (the metric must be one this release computes).
    pub fn new(inputs: Inputs<'a>) -> Result<Self> {
        let eval = EvalSettings::of(&inputs)?;
        Ok(CausalLm {
            data: inputs.data,
            tokenizer: inputs.tokenizer,
            rows: packed_rows(&inputs.data.train, inputs.settings),
            eval,
        })
    }

    /// The pieces one micro-batch is computed in. Padding-free: the rows without their padding, joined into one
    /// row of separate samples (token-averaged loss) or one at a time (sample-averaged: its weights are per
    /// row). Packed rows, and NEFTune, whose noise scale depends on the padded length, keep the batch as
    /// collated.
    fn pieces(
        &self,
        ids: &[Vec<u32>],
        labels: &[Vec<i64>],
        attention: &[Vec<u32>],
        packing: Option<Packing>,
        settings: &LoopSettings,
        seed: u64,
    ) -> Vec<Piece> {
        if packing.is_some() || settings.neftune_noise_alpha > 0.0 {
            return vec![(seed, ids.to_vec(), labels.to_vec(), packing)];
        }
        let rows = unpadded_rows(ids, labels, attention);
        if settings.loss == LossKind::TokenAveraged {
            let (ids, labels, packing) = concatenate(&rows);
            return vec![(seed, vec![ids], vec![labels], Some(packing))];
        }
        rows.into_iter()
            .map(|(row, ids, labels)| (mix(seed, 0xD0, row as u64), vec![ids], vec![labels], None))
            .collect()
    }
}

impl Objective for CausalLm<'_> {
    fn units(&self) -> usize {
        self.rows.as_ref().map_or(self.data.train.len(), Vec::len)
    }

    fn micro_step(
        &self,
        model: &Llama,
        mb: MicroBatch<'_>,
        settings: &LoopSettings,
        accumulate: &mut dyn FnMut(&GradStore) -> Result<()>,
    ) -> Result<MicroStep> {
        let batch = match &self.rows {
            Some(rows) => collate_packed(&self.data.train, rows, mb.indices, &settings.padding),
            None => collate(
                self.data.train_for_epoch(mb.epoch),
                mb.indices,
                &settings.padding,
            ),
        };
        let (mut ids, labels) = (batch.input_ids, batch.labels);
        if settings.token_mask_probability > 0.0 {
            mask_tokens(
                &mut ids,
                &batch.attention_mask,
                settings.token_mask_probability,
                settings.padding.pad_id,
                mb.seed,
            );
        }
        let packing = self.rows.is_some().then(|| Packing {
            position_ids: batch.position_ids.clone(),
            sequence_ids: batch.sequence_ids.clone(),
        });
        let options = |seed: u64, packing: Option<Packing>| ForwardOptions {
            dropout_seed: Some(seed),
            intermediate_dropout: settings.intermediate_dropout as f32,
            checkpointing: mb.checkpointing.cloned(),
            neftune: (settings.neftune_noise_alpha > 0.0)
                .then_some((settings.neftune_noise_alpha, mb.seed ^ 0x4E)),
            packing,
        };
        let norm = Normalization::of(&labels, settings.loss)?;
        let mut loss = 0.0;
        for (seed, piece_ids, piece_labels, piece_packing) in self.pieces(
            &ids,
            &labels,
            &batch.attention_mask,
            packing,
            settings,
            mb.seed,
        ) {
            let opts = options(seed, piece_packing);
            let out = batch_loss_normalized(model, &piece_ids, &piece_labels, &norm, &opts)?;
            let piece_loss = out.loss.to_scalar::<f32>()? as f64;
            if !piece_loss.is_finite() {
                return Err(Error::NonFiniteLoss {
                    step: mb.step,
                    value: piece_loss,
                });
            }
            loss += piece_loss;
            accumulate(&(out.loss * mb.scale)?.backward()?)?;
        }
        Ok(MicroStep {
            loss,
            tokens: ids.iter().map(Vec::len).sum(),
            rewards: None,
        })
    }

    fn metric(&self) -> Metric {
        self.eval.metric
    }

    fn evaluate(&self, model: &Llama, generate: bool) -> Result<Evaluation> {
        self.eval
            .answers(model, self.tokenizer, &self.data.validation, generate)
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
        let batch = match &self.rows {
            Some(rows) => collate_packed(&self.data.train, rows, &first, &settings.padding),
            None => collate(&self.data.train, &first, &settings.padding),
        };
        Ok(ferrotune_data::save_first_batch(
            &batch,
            self.tokenizer,
            path,
        )?)
    }
}

/// Token masking augmentation: input tokens (not labels) replaced by the pad token with probability `p`.
fn mask_tokens(ids: &mut [Vec<u32>], attention: &[Vec<u32>], p: f64, pad: u32, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7A5C);
    for (row, mask) in ids.iter_mut().zip(attention) {
        for (i, id) in row.iter_mut().enumerate() {
            // Padding positions stay as they are; the first token is never masked.
            if i > 0 && mask.get(i) == Some(&1) && rng.random::<f64>() < p {
                *id = pad;
            }
        }
    }
}
