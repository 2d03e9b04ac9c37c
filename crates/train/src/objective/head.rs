//! Classification and regression (`text_causal_classification_modeling`, `text_causal_regression_modeling`):
//! each sample is its prompt alone; a linear head ([`crate::head::Head`]) on the last token's hidden state gives
//! class logits or values, trained with the adapters by binary/softmax cross-entropy or MSE/MAE, and evaluated
//! by AUC, accuracy, log loss, MSE or MAE ([`crate::scores`]).

use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::Var;
use ferrotune_data::batch::collate;
use ferrotune_data::{PreparedData, Sample, Targets, TextTokenizer};
use ferrotune_model::{ForwardOptions, Llama};

use super::{EvalSettings, Inputs, MicroBatch, MicroStep, Objective};
use crate::error::{Error, Result};
use crate::eval::{Evaluation, Metric, Prediction};
use crate::head::{Head, LabelMapping};
use crate::scores;
use crate::trainer::LoopSettings;

/// The head objective over prepared data with targets.
pub struct HeadObjective<'a> {
    data: &'a PreparedData,
    targets: &'a Targets,
    tokenizer: &'a TextTokenizer,
    head: Head,
    eval: EvalSettings,
}

/// A sample's input: its prompt (everything before the answer, which holds the label).
fn input(sample: &Sample) -> &[u32] {
    let end = if sample.prompt_len == 0 {
        sample.input_ids.len()
    } else {
        sample.prompt_len
    };
    &sample.input_ids[..end]
}

impl<'a> HeadObjective<'a> {
    /// The objective of `inputs`; the data must have targets (the config's answer columns).
    pub fn new(inputs: Inputs<'a>, hidden: usize) -> Result<Self> {
        let targets = inputs.data.targets.as_ref().ok_or_else(|| {
            Error::Setting(
                "the data has no labels\nhelp: name the label columns in `dataset.answer_column`"
                    .into(),
            )
        })?;
        let mapping = LabelMapping::new(inputs.config, targets)?;
        let seed = inputs.settings.seed;
        Ok(HeadObjective {
            data: inputs.data,
            targets,
            tokenizer: inputs.tokenizer,
            head: Head::new(mapping, hidden, seed)?,
            eval: EvalSettings::of(&inputs)?,
        })
    }

    /// Outputs (probabilities or values) and loss of the validation samples, batch by batch.
    fn validation_outputs(&self, model: &Llama) -> Result<(Vec<Vec<f64>>, f64)> {
        let samples = &self.data.validation;
        if samples.is_empty() {
            return Err(Error::Setting("the validation set is empty\nhelp: raise `dataset.validation_size` or give a `dataset.validation_dataframe`".into()));
        }
        let model = model.for_inference();
        let (mut all, mut loss_sum) = (Vec::with_capacity(samples.len()), 0.0);
        let indices: Vec<usize> = (0..samples.len()).collect();
        for chunk in indices.chunks(self.eval.batch.max(1)) {
            let rows: Vec<&[u32]> = chunk.iter().map(|&i| input(&samples[i])).collect();
            let outputs = self
                .head
                .forward(&model, &rows, ForwardOptions::default())?
                .detach();
            let targets: Vec<&[f32]> = chunk
                .iter()
                .map(|&i| self.targets.validation[i].as_slice())
                .collect();
            let loss = self.head.loss(&outputs, &targets)?.to_scalar::<f32>()? as f64;
            loss_sum += loss * chunk.len() as f64;
            all.extend(self.head.read(&outputs)?);
        }
        Ok((all, loss_sum / samples.len() as f64))
    }

    /// The metric of `outputs` against the validation targets.
    fn score(&self, outputs: &[Vec<f64>]) -> f64 {
        let kind = self.head.mapping.loss.outputs();
        let targets = &self.targets.validation;
        match self.eval.metric {
            Metric::Auc => scores::auc(kind, outputs, targets),
            Metric::Accuracy => scores::accuracy(kind, outputs, targets),
            Metric::LogLoss => scores::log_loss(kind, outputs, targets),
            Metric::Mse => scores::mse(outputs, targets),
            Metric::Mae => scores::mae(outputs, targets),
            Metric::Perplexity | Metric::Bleu | Metric::Gpt => f64::NAN,
        }
    }
}

impl Objective for HeadObjective<'_> {
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
        let rows: Vec<&[u32]> = mb
            .indices
            .iter()
            .map(|&i| input(&self.data.train[i]))
            .collect();
        let targets: Vec<&[f32]> = mb
            .indices
            .iter()
            .map(|&i| self.targets.train[i].as_slice())
            .collect();
        let options = ForwardOptions {
            dropout_seed: Some(mb.seed),
            intermediate_dropout: settings.intermediate_dropout as f32,
            checkpointing: mb.checkpointing.cloned(),
            neftune: (settings.neftune_noise_alpha > 0.0)
                .then_some((settings.neftune_noise_alpha, mb.seed ^ 0x4E)),
            packing: None,
        };
        let outputs = self.head.forward(model, &rows, options)?;
        let loss = self.head.loss(&outputs, &targets)?;
        let value = loss.to_scalar::<f32>()? as f64;
        if !value.is_finite() {
            return Err(Error::NonFiniteLoss {
                step: mb.step,
                value,
            });
        }
        accumulate(&(loss * mb.scale)?.backward()?)?;
        Ok(MicroStep {
            loss: value,
            tokens: rows.iter().map(|r| r.len()).sum(),
            rewards: None,
        })
    }

    fn metric(&self) -> Metric {
        self.eval.metric
    }

    fn evaluate(&self, model: &Llama, _generate: bool) -> Result<Evaluation> {
        let (outputs, loss) = self.validation_outputs(model)?;
        let metric = self.score(&outputs);
        let predictions = self
            .data
            .validation
            .iter()
            .zip(&outputs)
            .map(|(s, out)| Prediction {
                prompt: s.prompt_text.clone(),
                target: s.answer_text.clone(),
                prediction: self.head.prediction(out),
                metric: f64::NAN,
                explanation: None,
                outputs: out.clone(),
            })
            .collect();
        Ok(Evaluation {
            loss,
            perplexity: f64::NAN,
            metric,
            predictions,
            rewards: None,
            note: None,
        })
    }

    fn write_predictions(&self, path: &Path, evaluation: &Evaluation) -> Result<()> {
        let columns = self.head.output_columns();
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["prompt".to_string(), "target".into(), "prediction".into()];
        header.extend(columns);
        let io = |e: csv::Error| Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        };
        writer.write_record(&header).map_err(io)?;
        for p in &evaluation.predictions {
            let mut record = vec![p.prompt.clone(), p.target.clone(), p.prediction.clone()];
            record.extend(
                self.head
                    .output_values(&p.outputs)
                    .iter()
                    .map(f64::to_string),
            );
            writer.write_record(&record).map_err(io)?;
        }
        let bytes = writer.into_inner().map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        ferrotune_home::atomic::write(path, &bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    fn save_first_batch(&self, path: &Path, settings: &LoopSettings) -> Result<()> {
        let Some(first) = settings.sampler(self.units()).batch(Default::default()) else {
            return Ok(());
        };
        let prompts: Vec<Sample> = first
            .iter()
            .map(|&i| {
                let s = &self.data.train[i];
                let ids = input(s).to_vec();
                Sample {
                    labels: vec![ferrotune_data::IGNORE_INDEX; ids.len()],
                    input_ids: ids,
                    ..s.clone()
                }
            })
            .collect();
        let all: Vec<usize> = (0..prompts.len()).collect();
        let batch = collate(&prompts, &all, &settings.padding);
        Ok(ferrotune_data::save_first_batch(
            &batch,
            self.tokenizer,
            path,
        )?)
    }

    fn own_params(&self) -> Vec<(String, Var)> {
        vec![(self.head.param_name(), self.head.weight.clone())]
    }

    fn save_own(&self, dir: &Path) -> Result<()> {
        self.head.save(dir)
    }

    fn restore_own(&self, dir: &Path) -> Result<()> {
        self.head.restore(dir)
    }
}
