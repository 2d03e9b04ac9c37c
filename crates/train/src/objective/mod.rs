//! What differs between problem types, behind one trait: how a micro-batch becomes a loss (collation, forward,
//! loss, backward), how the model is evaluated, which metric ranks it, what predictions and inspection files a
//! run leaves. The loop ([`crate::trainer::train`]) and the run ([`crate::run::run`]) only see [`Objective`].
//!
//! Adding a problem type: a variant of `ferrotune_config::ProblemType` (with its settings in the config schema),
//! one file here implementing [`Objective`], and one arm in [`for_problem`].

mod causal_lm;
pub mod dpo;
mod head;

use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::Var;
use ferrotune_config::{Experiment, ProblemType};
use ferrotune_data::{PreparedData, TextTokenizer};
use ferrotune_model::{CheckpointGrads, GenerationConfig, Llama};

pub use causal_lm::CausalLm;
pub use dpo::Dpo;
pub use head::HeadObjective;

use crate::error::Result;
use crate::eval::{Evaluation, Metric};
use crate::trainer::LoopSettings;

/// One micro-batch of the loop.
#[derive(Clone, Copy)]
pub struct MicroBatch<'a> {
    /// The epoch it belongs to (augmented data differ per epoch).
    pub epoch: u64,
    /// The training units (see [`Objective::units`]) of the batch.
    pub indices: &'a [usize],
    /// The seed of every random draw of this micro-step (dropout, masking, noise).
    pub seed: u64,
    /// The factor on the loss before the backward pass (1 / gradient accumulation).
    pub scale: f64,
    /// The optimizer step this micro-batch counts toward (1-based, for error messages).
    pub step: u64,
    /// With `architecture.gradient_checkpointing`: where recomputed layers leave their gradients.
    pub checkpointing: Option<&'a CheckpointGrads>,
}

/// What one micro-step computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MicroStep {
    /// The micro-batch's loss (before `scale`).
    pub loss: f64,
    /// Tokens processed (for tokens per second).
    pub tokens: usize,
    /// Preference tuning: the micro-batch's rewards and its number of pairs.
    pub rewards: Option<(ferrotune_home::Rewards, usize)>,
}

/// A problem type's part of training and evaluation.
pub trait Objective {
    /// Training units per epoch (samples, or packed rows of several).
    fn units(&self) -> usize;

    /// Forward, loss and backward of one micro-batch; each backward pass's gradients go to `accumulate`.
    fn micro_step(
        &self,
        model: &Llama,
        batch: MicroBatch<'_>,
        settings: &LoopSettings,
        accumulate: &mut dyn FnMut(&GradStore) -> Result<()>,
    ) -> Result<MicroStep>;

    /// The metric that ranks evaluations.
    fn metric(&self) -> Metric;

    /// Whether a zero gradient can be a sound state rather than a sign of divergence (a hinge loss whose pairs
    /// all clear their margin).
    fn can_be_flat(&self) -> bool {
        false
    }

    /// Evaluates the model on the validation data; `generate` asks for generated answers too (the final
    /// evaluation's predictions file).
    fn evaluate(&self, model: &Llama, generate: bool) -> Result<Evaluation>;

    /// Writes the evaluation's per-sample predictions (`validation_predictions.csv`).
    fn write_predictions(&self, path: &Path, evaluation: &Evaluation) -> Result<()>;

    /// Writes the first training batch, decoded, for inspection (`first_batch.json`).
    fn save_first_batch(&self, path: &Path, settings: &LoopSettings) -> Result<()>;

    /// Weights of its own trained beside the adapters (a classification head), with their names.
    fn own_params(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    /// Writes its own weights and files into `dir`, an adapter folder just saved (every copy of the adapter
    /// carries them).
    fn save_own(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }

    /// Lines for the run's log about how it evaluates.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Sets its own weights to those saved in `dir` (resuming, or starting from an earlier adapter).
    fn restore_own(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }
}

/// What an objective is built from.
pub struct Inputs<'a> {
    pub config: &'a Experiment,
    pub data: &'a PreparedData,
    pub tokenizer: &'a TextTokenizer,
    pub settings: &'a LoopSettings,
    pub generation: GenerationConfig,
    /// The backbone's hidden size (what a head reads).
    pub hidden_size: usize,
}

/// How an objective evaluates, read from the config the same way for every problem type: the metric, the
/// evaluation batches and the generation settings of generated answers.
pub struct EvalSettings {
    pub metric: Metric,
    pub padding: ferrotune_data::batch::PadOptions,
    pub batch: usize,
    pub generation: GenerationConfig,
    /// The LLM judge of `prediction.metric: GPT`.
    pub judge: Option<crate::judge::Judge>,
    /// Lines for the run's log about how it evaluates (e.g. the judge's cost guard falling back to BLEU).
    pub notes: Vec<String>,
}

impl EvalSettings {
    /// The evaluation of `inputs` (the metric must be one this release computes).
    pub fn of(inputs: &Inputs) -> Result<Self> {
        let cfg = inputs.config;
        let metric = Metric::from_config(cfg.prediction.metric).ok_or_else(|| {
            crate::error::Error::Setting(format!(
                "`prediction.metric: {}` cannot be computed in this release",
                cfg.prediction.metric
            ))
        })?;
        let data_settings = ferrotune_data::DatasetSettings::from_experiment(cfg);
        let (metric, judge, notes) = judge_of(cfg, metric, inputs.data.validation.len());
        let judge = match judge {
            Some(j)
                if cfg.prediction.metric_gpt_template == ferrotune_config::GptTemplate::MtBench =>
            {
                Some(j.with_categories(ferrotune_data::validation_column(
                    &data_settings,
                    &inputs.data.validation,
                    crate::judge::CATEGORY_COLUMN,
                )?))
            }
            other => other,
        };
        Ok(EvalSettings {
            metric,
            judge,
            notes,
            padding: ferrotune_data::batch::PadOptions::eval(&data_settings, inputs.tokenizer)?,
            batch: match cfg.prediction.batch_size_inference {
                0 => inputs.settings.batch_size,
                n => n as usize,
            },
            generation: inputs.generation.clone(),
        })
    }

    /// Evaluates `model` on the answers of `samples` with these settings (generating them when `generate`).
    pub fn answers(
        &self,
        model: &Llama,
        tokenizer: &TextTokenizer,
        samples: &[ferrotune_data::Sample],
        generate: bool,
    ) -> Result<Evaluation> {
        crate::eval::evaluate(
            model,
            tokenizer,
            samples,
            &self.padding,
            self.batch,
            crate::eval::Scoring {
                metric: self.metric,
                generation: generate.then_some(&self.generation),
                judge: self.judge.as_ref(),
            },
        )
    }
}

/// The judge of a GPT metric over `rows` validation answers — or, past `GPT_EVAL_MAX` rows (H2O's cost guard),
/// BLEU instead with a warning.
fn judge_of(
    cfg: &Experiment,
    metric: Metric,
    rows: usize,
) -> (Metric, Option<crate::judge::Judge>, Vec<String>) {
    if metric != Metric::Gpt {
        return (metric, None, Vec::new());
    }
    let settings = crate::judge::JudgeSettings::from_experiment(cfg);
    if rows > settings.max_rows {
        let note = format!(
            "warning: {rows} validation answers are more than GPT_EVAL_MAX ({}): the metric is BLEU instead of the GPT judge \
             (raise GPT_EVAL_MAX to pay for judging them all)",
            settings.max_rows
        );
        return (Metric::Bleu, None, vec![note]);
    }
    let note = format!(
        "GPT judge: `{}` at {} ({} template, {} tries of {} s per answer)",
        settings.model,
        settings.api_base,
        settings.template,
        settings.attempts,
        settings.timeout.as_secs()
    );
    (metric, Some(crate::judge::Judge::new(settings)), vec![note])
}

/// The objective of the config's `problem_type`.
pub fn for_problem<'a>(inputs: Inputs<'a>) -> Result<Box<dyn Objective + 'a>> {
    match inputs.config.problem_type {
        ProblemType::TextCausalLanguageModeling => Ok(Box::new(CausalLm::new(inputs)?)),
        ProblemType::TextDpoModeling => Ok(Box::new(Dpo::new(inputs)?)),
        ProblemType::TextCausalClassificationModeling
        | ProblemType::TextCausalRegressionModeling => {
            let hidden = inputs.hidden_size;
            Ok(Box::new(HeadObjective::new(inputs, hidden)?))
        }
    }
}
