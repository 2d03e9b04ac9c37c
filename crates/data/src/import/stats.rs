//! Dataset statistics: counts, the turns-per-conversation histogram, word-count histograms and per-column
//! null/empty counts, and for preference pairs both answers' word counts. Serialised into `dataset.json` and the
//! registry; fields are only ever added (with defaults), so older metadata reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Statistics of one canonical table (train or validation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Statistics {
    /// Rows of the canonical table (turns).
    pub rows: u64,
    /// Conversations (rows without a parent).
    pub conversations: u64,
    /// Number of conversations with each number of turns.
    pub turns_per_conversation: BTreeMap<u64, u64>,
    /// Words (whitespace-separated) per prompt.
    pub prompt_words: Histogram,
    /// Words per answer.
    pub answer_words: Histogram,
    /// Words per whole conversation (system, prompts and answers of every turn).
    pub conversation_words: Histogram,
    /// Empty values of the canonical text columns.
    pub empty: EmptyCounts,
    /// Null and empty values of each column of the imported files, summed over files by column name.
    pub columns: BTreeMap<String, ColumnCounts>,
    /// A table of preference pairs: its pairs and both answers' word counts (`answer_words` counts the chosen
    /// answers of every turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preference: Option<PreferenceStatistics>,
}

/// Statistics of the preference pairs of a table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreferenceStatistics {
    /// Rows that hold a pair: the last turns of conversations (earlier turns are history with a chosen answer).
    pub rows: u64,
    /// Pairs whose rejected answer is the same text as the chosen one (nothing to learn from them).
    pub identical: u64,
    /// Words per chosen answer of a pair.
    pub chosen_words: Histogram,
    /// Words per rejected answer of a pair.
    pub rejected_words: Histogram,
}

/// Empty values in the canonical table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyCounts {
    pub system: u64,
    pub prompt: u64,
    pub answer: u64,
}

/// How many values of a column are present, null (or missing) and empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnCounts {
    pub values: u64,
    pub nulls: u64,
    pub empty: u64,
}

impl ColumnCounts {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &ColumnCounts) {
        self.values += other.values;
        self.nulls += other.nulls;
        self.empty += other.empty;
    }
}

/// A histogram of non-negative counts with summary numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub min: u64,
    pub max: u64,
    pub mean: f64,
    pub median: u64,
    pub p95: u64,
    /// Bins of equal width covering `min..=max`.
    pub bins: Vec<Bin>,
}

/// Values in `lo..=hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bin {
    pub lo: u64,
    pub hi: u64,
    pub count: u64,
}

impl Histogram {
    /// Most bins of a histogram.
    pub const BINS: u64 = 10;

    /// The histogram of `values` (sorted in place).
    pub fn of(values: &mut [u32]) -> Histogram {
        if values.is_empty() {
            return Histogram::default();
        }
        values.sort_unstable();
        let n = values.len();
        let (min, max) = (u64::from(values[0]), u64::from(values[n - 1]));
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let quantile = |q: f64| u64::from(values[((n - 1) as f64 * q).round() as usize]);
        let width = (max - min + 1).div_ceil(Self::BINS).max(1);
        let mut bins: Vec<Bin> = (0..(max - min + 1).div_ceil(width))
            .map(|k| Bin {
                lo: min + k * width,
                hi: (min + (k + 1) * width - 1).min(max),
                count: 0,
            })
            .collect();
        for &v in values.iter() {
            let k = ((u64::from(v) - min) / width) as usize;
            bins[k].count += 1;
        }
        Histogram {
            min,
            max,
            mean,
            median: quantile(0.5),
            p95: quantile(0.95),
            bins,
        }
    }
}

/// Word count of a text.
pub(crate) fn words(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_cover_the_range_and_count_everything() {
        let mut values: Vec<u32> = (0..=99).collect();
        let h = Histogram::of(&mut values);
        assert_eq!((h.min, h.max, h.median, h.p95), (0, 99, 50, 94));
        assert_eq!(h.bins.len(), 10);
        assert!(h.bins.iter().all(|b| b.count == 10));
        assert_eq!(
            h.bins[9],
            Bin {
                lo: 90,
                hi: 99,
                count: 10
            }
        );
        assert!((h.mean - 49.5).abs() < 1e-9);

        let h = Histogram::of(&mut [3, 3, 4]);
        assert_eq!(h.bins.len(), 2);
        assert_eq!(h.bins[0].count, 2);
        assert_eq!(Histogram::of(&mut []), Histogram::default());
    }
}
