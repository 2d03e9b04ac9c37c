//! Sentence BLEU exactly as sacrebleu's `sentence_bleu(hyp, [ref])` computes it: the `13a` tokenizer,
//! n-grams up to 4, `exp` smoothing and effective order, on a 0–100 scale.

use std::collections::HashMap;

const MAX_ORDER: usize = 4;

/// BLEU of `hypothesis` against one `reference` (0–100).
pub fn sentence_bleu(hypothesis: &str, reference: &str) -> f64 {
    let hyp = tokenize_13a(hypothesis.trim_end());
    let reference = tokenize_13a(reference.trim_end());
    let (sys_len, ref_len) = (hyp.len(), reference.len());
    let mut correct = [0usize; MAX_ORDER];
    let mut total = [0usize; MAX_ORDER];
    for n in 1..=MAX_ORDER {
        let h = ngrams(&hyp, n);
        let r = ngrams(&reference, n);
        total[n - 1] = h.values().sum();
        correct[n - 1] = h
            .iter()
            .map(|(g, &c)| c.min(r.get(g).copied().unwrap_or(0)))
            .sum();
    }
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    if correct.iter().all(|&c| c == 0) {
        return 0.0;
    }
    let mut precisions = [0.0f64; MAX_ORDER];
    let mut smooth = 1.0;
    let mut eff_order = MAX_ORDER;
    for n in 1..=MAX_ORDER {
        if total[n - 1] == 0 {
            break;
        }
        eff_order = n;
        precisions[n - 1] = if correct[n - 1] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n - 1] as f64)
        } else {
            100.0 * correct[n - 1] as f64 / total[n - 1] as f64
        };
    }
    let log_sum: f64 = precisions[..eff_order]
        .iter()
        .map(|&p| if p == 0.0 { -9_999_999_999.0 } else { p.ln() })
        .sum();
    bp * (log_sum / eff_order as f64).exp()
}

fn ngrams(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    if tokens.len() >= n {
        for w in tokens.windows(n) {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    counts
}

/// sacrebleu's `13a` tokenizer (mteval-v13a).
pub fn tokenize_13a(line: &str) -> Vec<String> {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let chars: Vec<char> = format!(" {line} ").chars().collect();
    // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) → " \1 "
    let mut s: Vec<char> = Vec::with_capacity(chars.len() * 2);
    for c in chars {
        let punct = matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/');
        if punct {
            s.extend([' ', c, ' ']);
        } else {
            s.push(c);
        }
    }
    let digit = |c: char| c.is_ascii_digit();
    let period = |c: char| c == '.' || c == ',';
    // ([^0-9])([\.,]) → "\1 \2 "
    let s = substitute_pairs(
        &s,
        |a, b| !digit(a) && period(b),
        |a, b| vec![a, ' ', b, ' '],
    );
    // ([\.,])([^0-9]) → " \1 \2"
    let s = substitute_pairs(
        &s,
        |a, b| period(a) && !digit(b),
        |a, b| vec![' ', a, ' ', b],
    );
    // ([0-9])(-) → "\1 \2 "
    let s = substitute_pairs(&s, |a, b| digit(a) && b == '-', |a, b| vec![a, ' ', b, ' ']);
    s.into_iter()
        .collect::<String>()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Python's `re.sub` for a two-character pattern: non-overlapping matches, left to right.
fn substitute_pairs(
    s: &[char],
    matches: impl Fn(char, char) -> bool,
    replace: impl Fn(char, char) -> Vec<char>,
) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < s.len() {
        if i + 1 < s.len() && matches(s[i], s[i + 1]) {
            out.extend(replace(s[i], s[i + 1]));
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_like_13a() {
        assert_eq!(
            tokenize_13a("Hello,world.It costs 3.50!"),
            ["Hello", ",", "world", ".", "It", "costs", "3.50", "!"]
        );
    }

    #[test]
    fn identical_sentences_score_100() {
        assert!(
            (sentence_bleu("The cat sat on the mat.", "The cat sat on the mat.") - 100.0).abs()
                < 1e-9
        );
    }
}
