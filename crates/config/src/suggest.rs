//! "Did you mean …?": the closest name by edit distance. The one rule for every suggestion Ferrotune makes (setting
//! keys, choices, dataset columns, registered names).

/// The candidate closest to `word`, if it is close enough: a case-insensitive match first; else the smallest
/// case-insensitive Levenshtein distance within a third of the word's length (one edit always allowed), or within
/// half of it when the two share their first four letters (`replies` → `reply`), or any distance when one is the
/// start of the other (`rejected` → `rejected_response`).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    let length = word.chars().count();
    let limit = (length / 3).max(1);
    let shared_prefix_limit = (length / 2).max(limit);
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let lower = c.to_lowercase();
        if lower == word_lower {
            return Some(c);
        }
        let distance = strsim::levenshtein(&word_lower, &lower);
        let prefix = word_lower
            .chars()
            .zip(lower.chars())
            .take_while(|(a, b)| a == b)
            .count();
        // A word that is the whole start of the other (`rejected` → `rejected_response`) is close too.
        let whole_start =
            prefix >= 4 && prefix == word_lower.chars().count().min(lower.chars().count());
        let allowed = match (whole_start, prefix >= 4) {
            (true, _) => usize::MAX,
            (false, true) => shared_prefix_limit,
            (false, false) => limit,
        };
        if distance <= allowed && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_close_names_only() {
        let names = ["learning_rate", "lora_r", "lora_alpha"];
        assert_eq!(did_you_mean("lerning_rate", names), Some("learning_rate"));
        assert_eq!(did_you_mean("LORA_ALPHA", names), Some("lora_alpha"));
        assert_eq!(did_you_mean("epochs", names), None);
        assert_eq!(did_you_mean("replies", ["prompt", "reply"]), Some("reply"));
        assert_eq!(
            did_you_mean("rejected", ["chosen_response", "rejected_response"]),
            Some("rejected_response")
        );
        assert_eq!(
            did_you_mean("output", ["instruction", "input", "response"]),
            None
        );
        assert_eq!(
            did_you_mean("adamw", ["Adam", "AdamW", "SGD"]),
            Some("AdamW")
        );
    }
}
