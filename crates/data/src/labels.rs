//! Labels and targets of classification and regression: what a head learns from the answer columns. A row's
//! label is read from the last turn of its sample; each sample gets one vector of numbers ([`Targets`]):
//!
//! - binary (`BinaryCrossEntropyLoss`, one column): `[y]` with y ∈ {0, 1};
//! - multilabel (`BinaryCrossEntropyLoss`, one column per class): `[y₁ … yₙ]`, each 0 or 1;
//! - multiclass (`CrossEntropyLoss`, one column): `[k]`, the class index;
//! - regression: `[v₁ … vₙ]`, one number per target column.
//!
//! Labels written as names (`positive`, `spam`) are mapped to indices in sorted order, and the mapping is kept
//! ([`Targets::classes`]) so predictions can be named; integer labels are indices as they are.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::Sample;
use crate::table::Table;

/// What the answer columns hold for a head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSettings {
    /// The label or target columns, in order.
    pub columns: Vec<String>,
    pub kind: TargetKind,
}

/// How labels are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetKind {
    /// 0/1 labels: one column (binary) or one per class (multilabel).
    Binary,
    /// One column naming one of this many classes.
    Classes(usize),
    /// Numbers, one per column.
    Values,
}

/// The head's targets of every sample, aligned with `PreparedData::train` and `PreparedData::validation`.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    pub train: Vec<Vec<f32>>,
    pub validation: Vec<Vec<f32>>,
    /// One-column classification: the name of each class index (`"0"`, `"1"` … for integer labels).
    pub classes: Option<Vec<String>>,
    /// The label or target columns.
    pub columns: Vec<String>,
}

/// The raw label texts of one side: per sample, the values of the label columns at its last row.
pub(crate) struct RawLabels<'a> {
    pub table: &'a Table,
    pub columns: &'a [usize],
    pub samples: &'a [Sample],
}

impl RawLabels<'_> {
    fn texts(&self, sample: &Sample) -> Vec<&str> {
        self.columns
            .iter()
            .map(|&c| self.table.text(sample.row, c).trim())
            .collect()
    }

    fn error(&self, sample: &Sample, column: usize, message: String, help: &str) -> Error {
        Error::Label {
            path: self.table.path.clone(),
            at: self.table.origin(sample.row).to_string(),
            column: self.table.columns[self.columns[column]].clone(),
            message,
            help: help.to_string(),
        }
    }
}

/// Reads the targets of both sides, checking every label (a name the training side lacks, a value outside the
/// classes, a non-number, a single class).
pub(crate) fn targets(
    settings: &TargetSettings,
    train: &RawLabels,
    validation: &RawLabels,
) -> Result<Targets> {
    let (classes, kind) = match settings.kind {
        TargetKind::Binary if settings.columns.len() == 1 => {
            (class_names(train, 2)?, settings.kind)
        }
        TargetKind::Classes(n) => (class_names(train, n)?, settings.kind),
        kind => (None, kind),
    };
    let read = |side: &RawLabels| -> Result<Vec<Vec<f32>>> {
        side.samples
            .iter()
            .map(|s| read_sample(side, s, kind, classes.as_deref()))
            .collect()
    };
    let out = Targets {
        train: read(train)?,
        validation: read(validation)?,
        classes,
        columns: settings.columns.clone(),
    };
    if kind != TargetKind::Values {
        check_several_classes(&out, train)?;
    }
    Ok(out)
}

/// Class names when the labels are names rather than integers: the sorted names of the training side (at most
/// `limit`); `None` when every label is an integer.
fn class_names(train: &RawLabels, limit: usize) -> Result<Option<Vec<String>>> {
    let all_integers = train
        .samples
        .iter()
        .all(|s| train.texts(s).iter().all(|t| integer(t).is_some()));
    if all_integers {
        return Ok(None);
    }
    let names: BTreeSet<&str> = train
        .samples
        .iter()
        .flat_map(|s| train.texts(s))
        .filter(|t| !t.is_empty())
        .collect();
    if names.len() > limit {
        let shown: Vec<&str> = names.iter().take(8).copied().collect();
        return Err(Error::Label {
            path: train.table.path.clone(),
            at: "the training rows".into(),
            column: train.table.columns[train.columns[0]].clone(),
            message: format!(
                "holds {} different labels ({}{}), more than the {limit} classes",
                names.len(),
                shown.join(", "),
                if names.len() > 8 { ", …" } else { "" }
            ),
            help: format!(
                "set `dataset.num_classes: {}` (and `training.loss_function: CrossEntropyLoss` for more than two)",
                names.len()
            ),
        });
    }
    Ok(Some(names.into_iter().map(String::from).collect()))
}

fn read_sample(
    side: &RawLabels,
    sample: &Sample,
    kind: TargetKind,
    classes: Option<&[String]>,
) -> Result<Vec<f32>> {
    let texts = side.texts(sample);
    texts
        .iter()
        .enumerate()
        .map(|(c, text)| {
            if text.is_empty() {
                return Err(side.error(
                    sample,
                    c,
                    "is empty".into(),
                    "every sample needs its label; remove the row or fill it in",
                ));
            }
            match (kind, classes) {
                (TargetKind::Values, _) => text
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .map(|v| v as f32)
                    .ok_or_else(|| {
                        side.error(
                            sample,
                            c,
                            format!("is `{text}`, not a number"),
                            "regression targets are numbers; fix or remove the row",
                        )
                    }),
                (_, Some(names)) => names
                    .iter()
                    .position(|n| n == text)
                    .map(|k| k as f32)
                    .ok_or_else(|| {
                        side.error(
                            sample,
                            c,
                            format!("is `{text}`, a label the training data does not have (its labels: {})", names.join(", ")),
                            "the validation labels must be among the training labels",
                        )
                    }),
                (TargetKind::Classes(n), None) => in_range(side, sample, c, text, n),
                (TargetKind::Binary, None) => in_range(side, sample, c, text, 2),
            }
        })
        .collect()
}

fn in_range(side: &RawLabels, sample: &Sample, c: usize, text: &str, n: usize) -> Result<f32> {
    match integer(text) {
        Some(k) if (0..n as i64).contains(&k) => Ok(k as f32),
        _ => Err(side.error(
            sample,
            c,
            format!("is `{text}`, not a class index from 0 to {}", n - 1),
            if n == 2 {
                "binary labels are 0 or 1 (or two names)"
            } else {
                "raise `dataset.num_classes`, or fix the row"
            },
        )),
    }
}

/// An integer label: `3`, `3.0`, `true`/`false` (as 1/0).
fn integer(text: &str) -> Option<i64> {
    match text {
        "true" | "True" => return Some(1),
        "false" | "False" => return Some(0),
        _ => {}
    }
    let v: f64 = text.parse().ok()?;
    (v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15).then_some(v as i64)
}

/// Training on one class only teaches nothing: an error naming the column.
fn check_several_classes(targets: &Targets, train: &RawLabels) -> Result<()> {
    for c in 0..targets.columns.len() {
        let mut values = targets.train.iter().map(|t| t[c]);
        let Some(first) = values.next() else {
            return Ok(());
        };
        if values.all(|v| v == first) {
            return Err(Error::Label {
                path: train.table.path.clone(),
                at: "every training row".into(),
                column: targets.columns[c].clone(),
                message: format!("has the same label ({first})"),
                help: "a classifier needs examples of at least two classes; check the column and `dataset.data_sample`"
                    .into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(values: &[&str]) -> Table {
        let mut t = Table::new(std::path::Path::new("d.csv"), vec!["label".into()]);
        for v in values {
            t.push(
                vec![Some(v.to_string())],
                crate::table::RowOrigin::Line(t.len() as u64 + 2),
            );
        }
        t
    }

    fn samples(n: usize) -> Vec<Sample> {
        (0..n)
            .map(|row| Sample {
                input_ids: vec![1],
                labels: vec![-100],
                prompt_len: 1,
                bos_len: 0,
                prompt_text: String::new(),
                answer_text: String::new(),
                conversation_id: row.to_string(),
                row,
                truncated: false,
            })
            .collect()
    }

    fn run(kind: TargetKind, train: &[&str], val: &[&str]) -> Result<Targets> {
        let (t, v) = (table(train), table(val));
        let (ts, vs) = (samples(train.len()), samples(val.len()));
        let settings = TargetSettings {
            columns: vec!["label".into()],
            kind,
        };
        targets(
            &settings,
            &RawLabels {
                table: &t,
                columns: &[0],
                samples: &ts,
            },
            &RawLabels {
                table: &v,
                columns: &[0],
                samples: &vs,
            },
        )
    }

    #[test]
    fn names_map_to_sorted_indices_and_integers_stay() {
        let t = run(TargetKind::Binary, &["spam", "ham", "spam"], &["ham"]).unwrap();
        assert_eq!(t.classes, Some(vec!["ham".into(), "spam".into()]));
        assert_eq!(t.train, vec![vec![1.0], vec![0.0], vec![1.0]]);
        assert_eq!(t.validation, vec![vec![0.0]]);
        let t = run(TargetKind::Classes(3), &["2", "0", "1.0"], &["true"]).unwrap();
        assert_eq!(t.classes, None);
        assert_eq!(t.train, vec![vec![2.0], vec![0.0], vec![1.0]]);
        let t = run(TargetKind::Values, &["0.5", "-2e3"], &["7"]).unwrap();
        assert_eq!(t.train, vec![vec![0.5], vec![-2000.0]]);
    }

    #[test]
    fn bad_labels_name_the_row_and_the_fix() {
        let e = run(TargetKind::Classes(3), &["0", "3"], &["0"]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("line 3") && text.contains("not a class index from 0 to 2"),
            "{text}"
        );
        let e = run(TargetKind::Values, &["1", "abc"], &["0"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`abc`, not a number") && e.contains("line 3"),
            "{e}"
        );
        let e = run(TargetKind::Binary, &["a", "b", "c"], &["a"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("3 different labels") && e.contains("num_classes: 3"),
            "{e}"
        );
        let e = run(TargetKind::Binary, &["1", "1"], &["0"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("same label"), "{e}");
        let e = run(TargetKind::Binary, &["a", "b"], &["c"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("the training data does not have"), "{e}");
        let e = run(TargetKind::Values, &["1", ""], &["0"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is empty"), "{e}");
    }
}
