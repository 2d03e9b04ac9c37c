//! "Did you mean …?": the closest name by edit distance.

/// The candidate closest to `word` (case-insensitive Levenshtein distance), if it is close enough: at most a third
/// of the word's length, and at least one edit is always allowed.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&word_lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
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
        assert_eq!(
            did_you_mean("adamw", ["Adam", "AdamW", "SGD"]),
            Some("AdamW")
        );
    }
}
