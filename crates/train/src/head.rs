//! The linear head of classification and regression: `outputs = W · h`, with `h` the final hidden state of
//! each sample's last token and `W` `(outputs, hidden)` trained in f32 beside the adapters — the `score` layer
//! of transformers' `LlamaForSequenceClassification`. It is saved next to the adapter it was trained with
//! ([`HEAD_FILE_CLASSIFICATION`] / [`HEAD_FILE_REGRESSION`] with the tensor `<name>.weight`, and the
//! [`LABEL_MAPPING_FILE`]), so every copy of the adapter (best, last, per evaluation, checkpoint) carries it.

use std::path::Path;

use candle_core::{DType, Tensor, Var};
use ferrotune_config::{Experiment, LossFunction, ProblemType};
use ferrotune_data::Targets;
use ferrotune_model::{ForwardOptions, Llama, Packing};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::scores::Outputs;

/// The classification head's weights, in the adapter folder.
pub const HEAD_FILE_CLASSIFICATION: &str = "classification_head.safetensors";
/// The regression head's weights, in the adapter folder.
pub const HEAD_FILE_REGRESSION: &str = "regression_head.safetensors";
/// What the head's outputs mean (columns, class names, loss), in the adapter folder.
pub const LABEL_MAPPING_FILE: &str = "label_mapping.json";

/// The loss a head trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeadLoss {
    BinaryCrossEntropy,
    CrossEntropy,
    MeanSquaredError,
    MeanAbsoluteError,
}

impl HeadLoss {
    /// The head loss of a config's `training.loss_function` (`None` outside classification and regression).
    pub fn of(loss: LossFunction) -> Option<HeadLoss> {
        match loss {
            LossFunction::BinaryCrossEntropyLoss => Some(HeadLoss::BinaryCrossEntropy),
            LossFunction::CrossEntropyLoss => Some(HeadLoss::CrossEntropy),
            LossFunction::MseLoss => Some(HeadLoss::MeanSquaredError),
            LossFunction::MaeLoss => Some(HeadLoss::MeanAbsoluteError),
            _ => None,
        }
    }

    /// How the outputs are read: sigmoid probabilities, softmax probabilities, or values.
    pub fn outputs(self) -> Outputs {
        match self {
            HeadLoss::BinaryCrossEntropy => Outputs::Binary,
            HeadLoss::CrossEntropy => Outputs::Classes,
            HeadLoss::MeanSquaredError | HeadLoss::MeanAbsoluteError => Outputs::Values,
        }
    }
}

/// What a head's outputs mean: saved as [`LABEL_MAPPING_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelMapping {
    pub problem_type: ProblemType,
    pub loss: HeadLoss,
    /// The label or target columns of the training data.
    pub columns: Vec<String>,
    /// One-column classification with named labels: the name of each class index.
    pub classes: Option<Vec<String>>,
    /// Outputs of the head (rows of its weight).
    pub outputs: usize,
}

impl LabelMapping {
    /// The mapping a config and its prepared targets give.
    pub fn new(cfg: &Experiment, targets: &Targets) -> Result<LabelMapping> {
        let loss = HeadLoss::of(cfg.training.loss_function).ok_or_else(|| {
            Error::Setting(format!(
                "`training.loss_function: {}` is not a loss of a head",
                cfg.training.loss_function
            ))
        })?;
        let outputs = match loss {
            HeadLoss::CrossEntropy => cfg.dataset.num_classes as usize,
            _ => targets.columns.len(),
        };
        Ok(LabelMapping {
            problem_type: cfg.problem_type,
            loss,
            columns: targets.columns.clone(),
            classes: targets.classes.clone(),
            outputs,
        })
    }

    /// The name of the head's weights (`classification_head` or `regression_head`: what
    /// `training.differential_learning_rate_layers` matches).
    pub fn head_name(&self) -> &'static str {
        match self.problem_type {
            ProblemType::TextCausalRegressionModeling => "regression_head",
            _ => "classification_head",
        }
    }

    fn file(&self) -> &'static str {
        match self.problem_type {
            ProblemType::TextCausalRegressionModeling => HEAD_FILE_REGRESSION,
            _ => HEAD_FILE_CLASSIFICATION,
        }
    }

    /// The name of output `k`: a class name, a column, or `k`.
    pub fn output_name(&self, k: usize) -> String {
        match (&self.classes, self.loss) {
            (Some(names), _) => names.get(k).cloned().unwrap_or_else(|| k.to_string()),
            (None, HeadLoss::CrossEntropy) => k.to_string(),
            (None, _) => self
                .columns
                .get(k)
                .cloned()
                .unwrap_or_else(|| k.to_string()),
        }
    }
}

impl LabelMapping {
    /// What head output `k` is: its class or column ([`LabelMapping::output_name`]), except a binary head's
    /// one output, which is the probability of the positive class (index 1).
    pub fn output_label(&self, k: usize) -> String {
        if self.loss == HeadLoss::BinaryCrossEntropy && self.columns.len() == 1 {
            self.output_name(1)
        } else {
            self.output_name(k)
        }
    }
}

/// A trained (or training) head.
#[derive(Debug, Clone)]
pub struct Head {
    pub weight: Var,
    pub mapping: LabelMapping,
}

impl Head {
    /// A fresh head: weights drawn from N(0, 0.02²) (transformers' `initializer_range`), seeded.
    pub fn new(mapping: LabelMapping, hidden: usize, seed: u64) -> Result<Head> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x4EAD);
        let values: Vec<f32> = (0..mapping.outputs * hidden)
            .map(|_| {
                // Box–Muller.
                let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
                (0.02 * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
            .collect();
        let weight =
            Tensor::from_vec(values, (mapping.outputs, hidden), &candle_core::Device::Cpu)?;
        Ok(Head {
            weight: Var::from_tensor(&weight)?,
            mapping,
        })
    }

    /// The parameter name of the weights.
    pub fn param_name(&self) -> String {
        format!("{}.weight", self.mapping.head_name())
    }

    /// Outputs `(n, outputs)` in f32 for `rows` (one sample's token ids each), computed as one padding-free row
    /// of separate samples; differentiable with respect to the head and the adapters unless `model` is an
    /// inference view.
    pub fn forward(
        &self,
        model: &Llama,
        rows: &[&[u32]],
        options: ForwardOptions,
    ) -> Result<Tensor> {
        let (mut ids, mut positions, mut sequences, mut last) = (vec![], vec![], vec![], vec![]);
        for (k, row) in rows.iter().enumerate() {
            if row.is_empty() {
                return Err(Error::Setting(
                    "a sample has no tokens\nhelp: check the prompt columns".into(),
                ));
            }
            ids.extend_from_slice(row);
            positions.extend(0..row.len() as u32);
            sequences.extend(std::iter::repeat_n(k as u32 + 1, row.len()));
            last.push(ids.len() as u32 - 1);
        }
        let device = model.device();
        let n = ids.len();
        let input = Tensor::from_vec(ids, (1, n), device)?;
        let options = ForwardOptions {
            packing: Some(Packing {
                position_ids: vec![positions],
                sequence_ids: vec![sequences],
            }),
            ..options
        };
        let hidden = model.hidden_states_with(&input, None, &options)?;
        let last = Tensor::from_vec(last, rows.len(), device)?;
        let h = hidden
            .squeeze(0)?
            .index_select(&last, 0)?
            .to_dtype(DType::F32)?;
        Ok(h.matmul(&self.weight.as_tensor().t()?)?)
    }

    /// The loss `()` of `outputs` `(n, k)` against `targets` (one row per sample), averaged over samples (and,
    /// for binary and regression losses, over columns), as torch's losses with `reduction="mean"`.
    pub fn loss(&self, outputs: &Tensor, targets: &[&[f32]]) -> Result<Tensor> {
        let device = outputs.device();
        let (n, k) = outputs.dims2()?;
        let loss = match self.mapping.loss {
            HeadLoss::CrossEntropy => {
                let max = outputs.max_keepdim(1)?.detach();
                let shifted = outputs.broadcast_sub(&max)?;
                let log_sum = shifted.exp()?.sum_keepdim(1)?.log()?;
                let log_probs = shifted.broadcast_sub(&log_sum)?;
                let index: Vec<u32> = targets.iter().map(|t| t[0] as u32).collect();
                let index = Tensor::from_vec(index, (n, 1), device)?;
                (log_probs.gather(&index, 1)?.sum_all()? * (-1.0 / n as f64))?
            }
            loss => {
                let flat: Vec<f32> = targets.iter().flat_map(|t| t.iter().copied()).collect();
                let y = Tensor::from_vec(flat, (n, k), device)?;
                let per = match loss {
                    // max(z, 0) − z·y + log(1 + e^(−|z|)): stable for any z.
                    HeadLoss::BinaryCrossEntropy => {
                        ((outputs.relu()? - (outputs * &y)?)?
                            + (outputs.abs()?.neg()?.exp()? + 1.0)?.log()?)?
                    }
                    HeadLoss::MeanSquaredError => (outputs - &y)?.sqr()?,
                    _ => (outputs - &y)?.abs()?,
                };
                per.mean_all()?
            }
        };
        Ok(loss)
    }

    /// Per sample, what the outputs say: probabilities (sigmoid per label, or softmax over the classes) or
    /// values.
    pub fn read(&self, outputs: &Tensor) -> Result<Vec<Vec<f64>>> {
        let rows = outputs.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        Ok(rows
            .into_iter()
            .map(|row| match self.mapping.loss.outputs() {
                Outputs::Binary => row.iter().map(|&z| 1.0 / (1.0 + (-z).exp())).collect(),
                Outputs::Classes => {
                    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let exp: Vec<f64> = row.iter().map(|&z| (z - max).exp()).collect();
                    let sum: f64 = exp.iter().sum();
                    exp.into_iter().map(|e| e / sum).collect()
                }
                Outputs::Values => row,
            })
            .collect())
    }

    /// The columns its outputs are written to after `prediction` (validation predictions, `ferrotune
    /// predict`, the studio's box): `probability_<class>` per class or label (binary: of the positive class
    /// only), `prediction_<column>` per target when there are several (one value is the prediction itself).
    pub fn output_columns(&self) -> Vec<String> {
        let m = &self.mapping;
        match m.loss.outputs() {
            Outputs::Values if m.outputs == 1 => Vec::new(),
            Outputs::Values => (0..m.outputs)
                .map(|k| format!("prediction_{}", m.output_name(k)))
                .collect(),
            _ => (0..m.outputs)
                .map(|k| format!("probability_{}", m.output_label(k)))
                .collect(),
        }
    }

    /// What [`Head::read`]'s `values` of one sample write under [`Head::output_columns`].
    pub fn output_values<'v>(&self, values: &'v [f64]) -> &'v [f64] {
        if self.output_columns().is_empty() {
            &[]
        } else {
            values
        }
    }

    /// The prediction in words: the most likely class (its name for named labels), the 0/1 labels joined by
    /// `;` (multilabel), or the value(s).
    pub fn prediction(&self, values: &[f64]) -> String {
        let m = &self.mapping;
        let joined = |items: Vec<String>| items.join(";");
        match m.loss.outputs() {
            Outputs::Classes => m.output_name(crate::scores::argmax(values)),
            Outputs::Binary if m.columns.len() == 1 => m.output_name(usize::from(values[0] >= 0.5)),
            Outputs::Binary => joined(
                values
                    .iter()
                    .map(|&p| u8::from(p >= 0.5).to_string())
                    .collect(),
            ),
            Outputs::Values => joined(values.iter().map(f64::to_string).collect()),
        }
    }

    /// Writes the weights and the label mapping into `dir` (an adapter folder).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let tensors =
            std::collections::HashMap::from([(self.param_name(), self.weight.as_tensor().clone())]);
        ferrotune_model::weights::save_safetensors(&tensors, &dir.join(self.mapping.file()))?;
        let path = dir.join(LABEL_MAPPING_FILE);
        let json = serde_json::to_string_pretty(&self.mapping)
            .map_err(|e| Error::Setting(e.to_string()))?;
        std::fs::write(&path, json).map_err(|source| Error::Io { path, source })
    }

    /// Reads a head saved by [`Head::save`] from `dir`.
    pub fn load(dir: &Path) -> Result<Head> {
        let path = dir.join(LABEL_MAPPING_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let mapping: LabelMapping = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            message: format!("is not a label mapping: {e}"),
        })?;
        let file = dir.join(mapping.file());
        let mut tensors = candle_core::safetensors::load(&file, &candle_core::Device::Cpu)
            .map_err(|e| Error::Checkpoint {
                path: file.clone(),
                message: e.to_string(),
            })?;
        let name = format!("{}.weight", mapping.head_name());
        let weight = tensors.remove(&name).ok_or_else(|| Error::Checkpoint {
            path: file.clone(),
            message: format!("has no tensor `{name}`"),
        })?;
        if weight.dims2()?.0 != mapping.outputs {
            return Err(Error::Checkpoint {
                path: file,
                message: format!(
                    "`{name}` does not have the {} outputs of {}",
                    mapping.outputs, LABEL_MAPPING_FILE
                ),
            });
        }
        Ok(Head {
            weight: Var::from_tensor(&weight.to_dtype(DType::F32)?)?,
            mapping,
        })
    }

    /// Sets the weights to those saved in `dir` (resuming), keeping this head's variable.
    pub fn restore(&self, dir: &Path) -> Result<()> {
        let saved = Head::load(dir)?;
        if saved.mapping != self.mapping {
            return Err(Error::Checkpoint {
                path: dir.join(LABEL_MAPPING_FILE),
                message: "describes other labels than the config and data do now".into(),
            });
        }
        self.weight.set(saved.weight.as_tensor())?;
        Ok(())
    }
}
