//! What each problem type changes in the settings, declared once: the settings whose default differs for it
//! (H2O LLM Studio's per-type defaults), the losses and metrics it offers, and whether it needs adapters. The
//! rest of a type — its data, head, loss computation, evaluation and outputs — lives in the `train` crate's
//! `objective/<type>.rs`.
//!
//! A file switches type by `problem_type`; every setting still at the old type's default then takes the new
//! type's, so `problem_type: text_dpo_modeling` alone gives DPO's `answer_column: chosen_response`.

use serde_yaml_ng::Value;

use crate::error::{Issue, Report};
use crate::meta::{setting, Setting};
use crate::schema::{Experiment, LossFunction, Metric, ProblemType};

impl ProblemType {
    /// Settings whose default differs for this type, with the type's default.
    pub fn default_overrides(self) -> Vec<(&'static str, Value)> {
        match self {
            ProblemType::TextCausalLanguageModeling => Vec::new(),
            ProblemType::TextDpoModeling => vec![
                ("dataset.answer_column", Value::from("chosen_response")),
                // A pair's earlier turns are history; only conversation ends are samples.
                ("dataset.limit_chained_samples", Value::from(true)),
                ("training.loss_function", Value::from("DPOLoss")),
                ("training.gradient_clip", Value::from(10.0)),
            ],
            ProblemType::TextCausalClassificationModeling => {
                let mut all = Self::head_defaults();
                all.push((
                    "training.loss_function",
                    Value::from("BinaryCrossEntropyLoss"),
                ));
                all.push(("prediction.metric", Value::from("AUC")));
                all
            }
            ProblemType::TextCausalRegressionModeling => {
                let mut all = Self::head_defaults();
                all.push(("training.loss_function", Value::from("MSELoss")));
                all.push(("prediction.metric", Value::from("MSE")));
                all
            }
        }
    }

    /// What classification and regression share (H2O LLM Studio's defaults): the label in `label`, and the
    /// sample is the prompt alone — no markers, no EOS — so its last token is the prompt's own.
    fn head_defaults() -> Vec<(&'static str, Value)> {
        vec![
            ("dataset.answer_column", Value::from("label")),
            ("dataset.text_system_start", Value::from("")),
            ("dataset.text_prompt_start", Value::from("")),
            ("dataset.text_answer_separator", Value::from("")),
            ("dataset.add_eos_token_to_system", Value::from(false)),
            ("dataset.add_eos_token_to_prompt", Value::from(false)),
            ("dataset.add_eos_token_to_answer", Value::from(false)),
        ]
    }

    /// The default of `setting` for this type.
    pub fn default_of(self, setting: &Setting) -> Value {
        self.default_overrides()
            .into_iter()
            .find(|(key, _)| *key == setting.key)
            .map_or_else(|| setting.default.clone(), |(_, v)| v)
    }

    /// The losses this type trains with; the first is its default.
    pub fn losses(self) -> &'static [LossFunction] {
        use LossFunction as L;
        match self {
            ProblemType::TextCausalLanguageModeling => {
                &[L::TokenAveragedCrossEntropy, L::SampleAveragedCrossEntropy]
            }
            ProblemType::TextDpoModeling => &[
                L::DpoLoss,
                L::DpoHingeLoss,
                L::DpoIpoLoss,
                L::KtoPairLoss,
                L::CpoLoss,
                L::SimPoLoss,
                L::OrpoLoss,
            ],
            ProblemType::TextCausalClassificationModeling => {
                &[L::BinaryCrossEntropyLoss, L::CrossEntropyLoss]
            }
            ProblemType::TextCausalRegressionModeling => &[L::MseLoss, L::MaeLoss],
        }
    }

    /// The validation metrics this type offers.
    pub fn metrics(self) -> &'static [Metric] {
        match self {
            // DPO is evaluated on its chosen answers, as H2O does.
            ProblemType::TextCausalLanguageModeling | ProblemType::TextDpoModeling => {
                &[Metric::Perplexity, Metric::Bleu, Metric::Gpt]
            }
            ProblemType::TextCausalClassificationModeling => {
                &[Metric::Auc, Metric::Accuracy, Metric::LogLoss]
            }
            ProblemType::TextCausalRegressionModeling => &[Metric::Mse, Metric::Mae],
        }
    }

    /// Whether the type needs `training.lora`: DPO's reference model is the backbone with its adapters off.
    pub fn needs_adapters(self) -> bool {
        match self {
            ProblemType::TextCausalLanguageModeling
            | ProblemType::TextCausalClassificationModeling
            | ProblemType::TextCausalRegressionModeling => false,
            ProblemType::TextDpoModeling => true,
        }
    }

    /// Whether the type trains a linear head on the last token's hidden state (and reads its labels from the
    /// answer columns) rather than generating answers.
    pub fn has_head(self) -> bool {
        matches!(
            self,
            ProblemType::TextCausalClassificationModeling
                | ProblemType::TextCausalRegressionModeling
        )
    }
}

impl Experiment {
    /// The defaults of `problem_type`.
    pub fn for_problem(problem_type: ProblemType) -> Experiment {
        let mut cfg = Experiment::default();
        cfg.switch_problem_type(problem_type);
        cfg
    }

    /// Sets `problem_type`; settings still at the old type's default take the new type's.
    pub fn switch_problem_type(&mut self, new: ProblemType) {
        let old = self.problem_type;
        self.problem_type = new;
        if old == new {
            return;
        }
        let keys: Vec<&'static str> = old
            .default_overrides()
            .into_iter()
            .chain(new.default_overrides())
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            let Some(s) = setting(key) else { continue };
            if self.get(key).as_ref() == Some(&old.default_of(s)) && !self.grid.contains_key(key) {
                // The value comes from the schema's own types, so it fits.
                let _ = self.set(key, &new.default_of(s));
            }
        }
    }
}

/// The rules between `problem_type` and the settings it constrains.
pub(crate) fn check(cfg: &Experiment, report: &mut Report) {
    let pt = cfg.problem_type;
    let names = |all: &[&str]| {
        all.iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !pt.losses().contains(&cfg.training.loss_function) {
        let offered: Vec<&str> = pt.losses().iter().map(|l| l.as_str()).collect();
        report.error(
            Issue::new(
                "training.loss_function",
                format!(
                    "is `{}`, which is not a loss of `problem_type: {pt}`",
                    cfg.training.loss_function
                ),
            )
            .with_help(format!("use one of {}", names(&offered))),
        );
    }
    if !pt.metrics().contains(&cfg.prediction.metric) {
        let offered: Vec<&str> = pt.metrics().iter().map(|m| m.as_str()).collect();
        report.error(
            Issue::new(
                "prediction.metric",
                format!(
                    "is `{}`, which `problem_type: {pt}` cannot compute",
                    cfg.prediction.metric
                ),
            )
            .with_help(format!("use one of {}", names(&offered))),
        );
    }
    if pt.needs_adapters() && !cfg.training.lora {
        report.error(
            Issue::new(
                "training.lora",
                format!("is false, but `problem_type: {pt}` trains adapters: its reference model is the backbone with the adapters switched off"),
            )
            .with_help("set `training.lora: true`"),
        );
    }
    let answers = cfg.dataset.answer_column.named();
    if !pt.has_head() && answers.len() > 1 {
        report.error(
            Issue::new(
                "dataset.answer_column",
                format!(
                    "names {} columns; `problem_type: {pt}` learns one answer",
                    answers.len()
                ),
            )
            .with_help("name one column (several are for classification and regression targets)"),
        );
    }
    if pt == ProblemType::TextCausalClassificationModeling {
        check_classes(cfg, answers.len(), report);
    }
    if pt == ProblemType::TextDpoModeling {
        let d = &cfg.dataset;
        if d.rejected_answer_column_name().is_none() {
            report.error(
                Issue::new("dataset.rejected_answer_column", "names no column").with_help(
                    "name the column with the rejected answers, e.g. `rejected_response`",
                ),
            );
        } else if d.rejected_answer_column_name() == d.answer_column_name() {
            report.error(
                Issue::new(
                    "dataset.rejected_answer_column",
                    format!(
                        "is `{}`, the same column as `dataset.answer_column`",
                        d.rejected_answer_column
                    ),
                )
                .with_help("the rejected answers need a column of their own"),
            );
        }
    }
}

/// Classification: `num_classes` against the loss and the label columns.
fn check_classes(cfg: &Experiment, columns: usize, report: &mut Report) {
    let classes = cfg.dataset.num_classes as usize;
    let issue = |message: String, help: &str| {
        Issue::new("dataset.num_classes", message).with_help(help.to_string())
    };
    match cfg.training.loss_function {
        LossFunction::CrossEntropyLoss if columns > 1 => report.error(issue(
            format!("`CrossEntropyLoss` takes one label column; `dataset.answer_column` names {columns}"),
            "several 0/1 label columns are multilabel: use `BinaryCrossEntropyLoss` with `num_classes` equal to their number",
        )),
        LossFunction::CrossEntropyLoss if classes < 2 => report.error(issue(
            format!("is {classes}; `CrossEntropyLoss` needs at least 2 classes"),
            "set `dataset.num_classes` to the number of classes, or use `BinaryCrossEntropyLoss` for 0/1 labels",
        )),
        LossFunction::BinaryCrossEntropyLoss if columns > 1 && classes != columns => {
            report.error(issue(
                format!("is {classes}, but `dataset.answer_column` names {columns} label columns (multilabel: one class per column)"),
                "set `dataset.num_classes` to the number of label columns",
            ))
        }
        LossFunction::BinaryCrossEntropyLoss if columns <= 1 && classes > 1 => report.error(issue(
            format!("is {classes}; `BinaryCrossEntropyLoss` on one label column is binary (0/1 labels, `num_classes: 1`)"),
            "for one label out of several classes use `CrossEntropyLoss`; for several 0/1 labels name one column per class",
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_brings_its_defaults_and_keeps_what_was_set() {
        let cfg = Experiment::for_problem(ProblemType::TextDpoModeling);
        assert_eq!(cfg.dataset.answer_column, "chosen_response");
        assert_eq!(cfg.training.loss_function, LossFunction::DpoLoss);
        assert_eq!(cfg.training.gradient_clip, 10.0);
        assert!(crate::validate(&cfg)
            .errors
            .iter()
            .all(|e| e.key != "training.loss_function"));

        let mut cfg = Experiment::default();
        cfg.dataset.answer_column = "reply".into();
        cfg.switch_problem_type(ProblemType::TextDpoModeling);
        assert_eq!(
            cfg.dataset.answer_column, "reply",
            "a value the user set stays"
        );
        assert_eq!(cfg.training.loss_function, LossFunction::DpoLoss);
        cfg.switch_problem_type(ProblemType::TextCausalLanguageModeling);
        assert_eq!(
            cfg.training.loss_function,
            LossFunction::TokenAveragedCrossEntropy
        );
        assert_eq!(cfg.training.gradient_clip, 0.0);
    }

    #[test]
    fn a_yaml_file_switches_type_before_its_other_keys() {
        // H2O writes its keys in alphabetical order: `dataset` before `problem_type`.
        let text = "dataset:\n  answer_column: output\nproblem_type: text_dpo_modeling\n";
        let cfg = Experiment::from_yaml_str(text, "`cfg.yaml`").unwrap();
        assert_eq!(cfg.dataset.answer_column, "output");
        assert_eq!(cfg.training.loss_function, LossFunction::DpoLoss);
    }

    #[test]
    fn a_loss_of_another_type_is_refused_with_the_choices() {
        let mut cfg = Experiment::for_problem(ProblemType::TextDpoModeling);
        cfg.training.loss_function = LossFunction::TokenAveragedCrossEntropy;
        cfg.training.lora = false;
        cfg.dataset.rejected_answer_column = "chosen_response".into();
        let report = crate::validate(&cfg);
        let text: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        let text = text.join("\n");
        assert!(
            text.contains("not a loss of `problem_type: text_dpo_modeling`"),
            "{text}"
        );
        assert!(text.contains("`DPOLoss`, `DPOHingeLoss`"), "{text}");
        assert!(text.contains("reference model is the backbone"), "{text}");
        assert!(
            text.contains("the same column as `dataset.answer_column`"),
            "{text}"
        );
    }
}
