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
        }
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
        }
    }

    /// The validation metrics this type offers.
    pub fn metrics(self) -> &'static [Metric] {
        match self {
            // DPO is evaluated on its chosen answers, as H2O does.
            ProblemType::TextCausalLanguageModeling | ProblemType::TextDpoModeling => {
                &[Metric::Perplexity, Metric::Bleu, Metric::Gpt]
            }
        }
    }

    /// Whether the type needs `training.lora`: DPO's reference model is the backbone with its adapters off.
    pub fn needs_adapters(self) -> bool {
        match self {
            ProblemType::TextCausalLanguageModeling => false,
            ProblemType::TextDpoModeling => true,
        }
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
