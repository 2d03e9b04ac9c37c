//! Terminal rendering of a dataset: its files, statistics as unicode bar histograms, and sample rows.

use std::path::Path;

use ferrotune_store::{format_utc, CanonicalRow, DatasetInfo, Histogram, SplitInfo};

/// Width of the longest bar, in characters.
const BAR_WIDTH: usize = 40;

/// A bar of `value / max` of [`BAR_WIDTH`], in eighths of a character.
pub fn bar(value: u64, max: u64) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    if max == 0 {
        return String::new();
    }
    let eighths = (value as u128 * BAR_WIDTH as u128 * 8 / max as u128) as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push(PARTS[eighths % 8]);
    }
    if s.is_empty() && value > 0 {
        s.push('▏');
    }
    s
}

fn histogram(title: &str, h: &Histogram) -> Vec<String> {
    let mut lines = vec![format!(
        "  {title}: min {}, median {}, mean {:.1}, p95 {}, max {}",
        h.min, h.median, h.mean, h.p95, h.max
    )];
    let max = h.bins.iter().map(|b| b.count).max().unwrap_or(0);
    for b in &h.bins {
        let range = if b.lo == b.hi {
            b.lo.to_string()
        } else {
            format!("{}–{}", b.lo, b.hi)
        };
        lines.push(format!(
            "    {range:>13} │{:<BAR_WIDTH$} {}",
            bar(b.count, max),
            b.count
        ));
    }
    lines
}

fn split(title: &str, s: &SplitInfo) -> Vec<String> {
    let st = &s.statistics;
    let mut lines = vec![
        String::new(),
        format!(
            "{title} ({}): {} rows, {} conversations",
            s.file.display(),
            st.rows,
            st.conversations
        ),
        "  turns per conversation".to_string(),
    ];
    let max = st
        .turns_per_conversation
        .values()
        .copied()
        .max()
        .unwrap_or(0);
    for (turns, count) in &st.turns_per_conversation {
        lines.push(format!(
            "    {turns:>13} │{:<BAR_WIDTH$} {count}",
            bar(*count, max)
        ));
    }
    lines.extend(histogram("prompt words", &st.prompt_words));
    lines.extend(histogram("answer words", &st.answer_words));
    lines.extend(histogram("conversation words", &st.conversation_words));
    if let Some(pairs) = &st.preference {
        lines.push(format!(
            "  preference pairs: {} ({} with the rejected answer equal to the chosen one)",
            pairs.rows, pairs.identical
        ));
        lines.extend(histogram("chosen answer words", &pairs.chosen_words));
        lines.extend(histogram("rejected answer words", &pairs.rejected_words));
    }
    lines.push(format!(
        "  empty canonical values: system {}, prompt {}, answer {}",
        st.empty.system, st.empty.prompt, st.empty.answer
    ));
    lines.push(format!(
        "  {:<24} {:>10} {:>10} {:>10}",
        "source column", "values", "nulls", "empty"
    ));
    for (name, c) in &st.columns {
        lines.push(format!(
            "  {name:<24} {:>10} {:>10} {:>10}",
            c.values, c.nulls, c.empty
        ));
    }
    lines
}

/// The list: a header, then one line per dataset.
pub fn table(datasets: &[DatasetInfo]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<24} {:>9} {:>13} {:>10}  {:<22} FORMAT",
        "NAME", "ROWS", "CONVERSATIONS", "VALIDATION", "CREATED"
    )];
    for d in datasets {
        let validation = d
            .validation
            .as_ref()
            .map(|v| v.rows.to_string())
            .unwrap_or_else(|| "-".into());
        lines.push(format!(
            "{:<24} {:>9} {:>13} {:>10}  {:<22} {}",
            d.name,
            d.train.rows,
            d.train.statistics.conversations,
            validation,
            format_utc(d.created),
            d.format
        ));
    }
    lines
}

/// The description of `info`, whose folder is `dir`.
pub fn describe(info: &DatasetInfo, dir: &Path) -> Vec<String> {
    let mut lines = vec![
        format!("dataset `{}`: {}", info.name, info.format),
        format!("folder: {}", dir.display()),
        format!(
            "created {}, updated {}",
            format_utc(info.created),
            format_utc(info.updated)
        ),
        "files:".to_string(),
    ];
    for f in &info.files {
        lines.push(format!(
            "  {:<10} {:<8} {:<6} {:>8} records → {:>8} rows  {}",
            f.split.name(),
            f.shape.name(),
            f.format,
            f.records,
            f.rows,
            f.source
        ));
    }
    lines.extend(split("train", &info.train));
    if let Some(v) = &info.validation {
        lines.extend(split("validation", v));
    }
    lines
}

/// Sample rows, one block each.
pub fn sample(rows: &[CanonicalRow]) -> Vec<String> {
    let mut lines = vec![String::new(), format!("sample ({} rows):", rows.len())];
    for r in rows {
        let parent = r
            .parent_id
            .as_deref()
            .map(|p| format!(" (after {p})"))
            .unwrap_or_default();
        lines.push(format!("── {}{parent}", r.id));
        if !r.system.is_empty() {
            lines.push(format!("  system: {}", indent(&r.system)));
        }
        lines.push(format!("  prompt: {}", indent(&r.prompt)));
        lines.push(format!("  answer: {}", indent(&r.answer)));
        if let Some(rejected) = r.rejected.as_deref().filter(|t| !t.is_empty()) {
            lines.push(format!("  rejected: {}", indent(rejected)));
        }
    }
    lines
}

/// Continuation lines of a multi-line text, aligned under its first line.
fn indent(text: &str) -> String {
    text.replace('\n', "\n          ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_count() {
        assert_eq!(bar(10, 10).chars().count(), BAR_WIDTH);
        assert_eq!(bar(5, 10), "█".repeat(BAR_WIDTH / 2));
        assert_eq!(bar(1, 100), "▍");
        assert_eq!(bar(0, 10), "");
        assert_eq!(bar(1, 1_000_000), "▏");
    }
}
