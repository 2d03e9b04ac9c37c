//! The validation metrics of classification and regression, computed as scikit-learn does (its
//! `roc_auc_score`, `accuracy_score`, `log_loss`, `mean_squared_error`, `mean_absolute_error`), which is what
//! H2O LLM Studio reports. Inputs are per-sample rows: probabilities (one per class, or one per label for binary
//! and multilabel) or predicted values, next to the targets of [`ferrotune_data::Targets`].

/// How the outputs of a head relate to its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// One probability per label column (binary: one column; multilabel: several), targets 0/1 per column.
    Binary,
    /// One probability per class (summing to 1); the target is the class index.
    Classes,
    /// Predicted values, one per target column.
    Values,
}

/// Area under the ROC curve: binary on one column; macro average over columns for multilabel; macro
/// one-vs-rest over classes for multiclass (scikit-learn's `multi_class="ovr"`, `average="macro"`). Ties count
/// half (the Mann–Whitney statistic). NaN when a column has only one class among the targets.
pub fn auc(outputs: Outputs, scores: &[Vec<f64>], targets: &[Vec<f32>]) -> f64 {
    let columns = scores.first().map_or(0, Vec::len);
    let per_column: Vec<f64> = (0..columns)
        .map(|c| {
            let positive: Vec<bool> = targets
                .iter()
                .map(|t| match outputs {
                    Outputs::Classes => t[0] as usize == c,
                    _ => t[c] >= 0.5,
                })
                .collect();
            let column: Vec<f64> = scores.iter().map(|s| s[c]).collect();
            binary_auc(&column, &positive)
        })
        .collect();
    mean(&per_column)
}

/// The binary AUC of `scores` against `positive` by average ranks.
fn binary_auc(scores: &[f64], positive: &[bool]) -> f64 {
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += rank * order[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

/// Share of samples predicted right: the most likely class (multiclass), or every label's probability on the
/// right side of 0.5 (binary and multilabel, scikit-learn's exact-match accuracy).
pub fn accuracy(outputs: Outputs, scores: &[Vec<f64>], targets: &[Vec<f32>]) -> f64 {
    let right = scores
        .iter()
        .zip(targets)
        .filter(|(s, t)| match outputs {
            Outputs::Classes => argmax(s) == t[0] as usize,
            _ => s
                .iter()
                .zip(t.iter())
                .all(|(p, &y)| (*p >= 0.5) == (y >= 0.5)),
        })
        .count();
    right as f64 / scores.len().max(1) as f64
}

/// Mean negative log-likelihood of the targets (probabilities clipped to [ε, 1 − ε] with f64's ε, as
/// scikit-learn does). Binary and multilabel: the mean over columns of each column's binary log loss.
pub fn log_loss(outputs: Outputs, scores: &[Vec<f64>], targets: &[Vec<f32>]) -> f64 {
    let clip = |p: f64| p.clamp(f64::EPSILON, 1.0 - f64::EPSILON);
    let per_sample: Vec<f64> = scores
        .iter()
        .zip(targets)
        .map(|(s, t)| match outputs {
            Outputs::Classes => {
                // scikit-learn renormalises the clipped row.
                let clipped: Vec<f64> = s.iter().map(|&p| clip(p)).collect();
                let sum: f64 = clipped.iter().sum();
                -(clipped[t[0] as usize] / sum).ln()
            }
            _ => mean(
                &s.iter()
                    .zip(t.iter())
                    .map(|(&p, &y)| {
                        let p = clip(p);
                        -(y as f64 * p.ln() + (1.0 - y as f64) * (1.0 - p).ln())
                    })
                    .collect::<Vec<_>>(),
            ),
        })
        .collect();
    mean(&per_sample)
}

/// Mean squared error over every sample and target column.
pub fn mse(values: &[Vec<f64>], targets: &[Vec<f32>]) -> f64 {
    mean_over(values, targets, |d| d * d)
}

/// Mean absolute error over every sample and target column.
pub fn mae(values: &[Vec<f64>], targets: &[Vec<f32>]) -> f64 {
    mean_over(values, targets, f64::abs)
}

fn mean_over(values: &[Vec<f64>], targets: &[Vec<f32>], f: impl Fn(f64) -> f64) -> f64 {
    let all: Vec<f64> = values
        .iter()
        .zip(targets)
        .flat_map(|(v, t)| v.iter().zip(t.iter()).map(|(&v, &y)| f(v - y as f64)))
        .collect();
    mean(&all)
}

/// The index of the largest value (the first of equal ones).
pub fn argmax(values: &[f64]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_half() {
        // Perfect, inverted and tied orderings.
        let t = |v: &[f32]| v.iter().map(|&y| vec![y]).collect::<Vec<_>>();
        let s = |v: &[f64]| v.iter().map(|&p| vec![p]).collect::<Vec<_>>();
        assert_eq!(auc(Outputs::Binary, &s(&[0.1, 0.9]), &t(&[0.0, 1.0])), 1.0);
        assert_eq!(auc(Outputs::Binary, &s(&[0.9, 0.1]), &t(&[0.0, 1.0])), 0.0);
        assert_eq!(auc(Outputs::Binary, &s(&[0.5, 0.5]), &t(&[0.0, 1.0])), 0.5);
        assert!(auc(Outputs::Binary, &s(&[0.5, 0.4]), &t(&[1.0, 1.0])).is_nan());
    }
}
