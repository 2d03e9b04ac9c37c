//! Logits processing and token choice, in transformers' order: repetition penalty → minimum length (stop ids
//! suppressed) → temperature → top-k → top-p → softmax → draw (or argmax when greedy).

use rand::distr::{weighted::WeightedIndex, Distribution};
use rand::rngs::StdRng;

/// Divides positive (multiplies negative) logits of tokens already present by `penalty` (CTRL's rule).
pub fn apply_repetition_penalty(logits: &mut [f32], previous: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    for &id in previous {
        let i = id as usize;
        if i < logits.len() && seen.insert(i) {
            let l = logits[i];
            logits[i] = if l < 0.0 { l * penalty } else { l / penalty };
        }
    }
}

/// Subtracts `presence` from the logit of every token already generated and `frequency` times its count
/// (OpenAI's `presence_penalty` / `frequency_penalty`, over the completion so far).
pub fn apply_presence_frequency(
    logits: &mut [f32],
    generated: &[u32],
    presence: f32,
    frequency: f32,
) {
    if presence == 0.0 && frequency == 0.0 {
        return;
    }
    let mut counts = std::collections::HashMap::new();
    for &id in generated {
        *counts.entry(id as usize).or_insert(0u32) += 1;
    }
    for (i, n) in counts {
        if let Some(l) = logits.get_mut(i) {
            *l -= presence + frequency * n as f32;
        }
    }
}

/// Sets the logits of `ids` to −∞ (used to forbid stopping before the minimum length).
pub fn suppress(logits: &mut [f32], ids: &[u32]) {
    for &id in ids {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// Index of the largest logit (the first one on ties, like torch's argmax).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Sampling settings after validation.
#[derive(Debug, Clone, Copy)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    /// Keep only tokens whose probability is at least this share of the most likely one's.
    pub min_p: Option<f32>,
}

/// Draws a token from `logits` with temperature, top-k and top-p filtering.
pub fn sample(logits: &mut [f32], params: SamplingParams, rng: &mut StdRng) -> u32 {
    let t = params.temperature;
    logits.iter_mut().for_each(|l| *l /= t);
    let mut order: Vec<usize> = (0..logits.len())
        .filter(|&i| logits[i].is_finite())
        .collect();
    if order.is_empty() {
        return argmax(logits);
    }
    order.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if let Some(k) = params.top_k.filter(|&k| k > 0) {
        order.truncate(k.max(1));
    }
    let max = logits[order[0]];
    let mut probs: Vec<f32> = order.iter().map(|&i| (logits[i] - max).exp()).collect();
    let total: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(p) = params.top_p.filter(|&p| p < 1.0) {
        // Keep the smallest prefix whose mass reaches p (always at least one token), as transformers does.
        let mut cumulative = 0.0;
        let mut keep = probs.len();
        for (n, &q) in probs.iter().enumerate() {
            cumulative += q;
            if cumulative >= p {
                keep = n + 1;
                break;
            }
        }
        probs.truncate(keep);
        order.truncate(keep);
    }
    if let Some(m) = params.min_p.filter(|&m| m > 0.0) {
        // probs[0] is the most likely token's; the kept ones are a prefix of the sorted order.
        let floor = m * probs[0];
        let keep = probs.iter().take_while(|&&q| q >= floor).count().max(1);
        probs.truncate(keep);
        order.truncate(keep);
    }
    match WeightedIndex::new(&probs) {
        Ok(dist) => order[dist.sample(rng)] as u32,
        Err(_) => order[0] as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn repetition_penalty_follows_ctrl() {
        let mut l = vec![2.0, -2.0, 1.0];
        apply_repetition_penalty(&mut l, &[0, 1, 1], 2.0);
        assert_eq!(l, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn top_k_one_is_greedy_and_seed_is_reproducible() {
        let logits = vec![0.1, 3.0, 0.5, 2.9];
        let p = SamplingParams {
            temperature: 1.0,
            top_k: Some(1),
            top_p: None,
            min_p: None,
        };
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(sample(&mut logits.clone(), p, &mut rng), 1);
        let p = SamplingParams {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            min_p: None,
        };
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..20)
                .map(|_| sample(&mut logits.clone(), p, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
    }

    #[test]
    fn min_p_drops_tokens_far_below_the_top_and_penalties_follow_openai() {
        // Probabilities ∝ e^0, e^-1, e^-5: with min_p 0.2 only the first two (0.37 ≥ 0.2) stay.
        let logits = vec![0.0, -1.0, -5.0];
        let p = SamplingParams {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            min_p: Some(0.2),
        };
        let mut rng = StdRng::seed_from_u64(3);
        let draws: std::collections::HashSet<u32> = (0..200)
            .map(|_| sample(&mut logits.clone(), p, &mut rng))
            .collect();
        assert_eq!(draws, [0, 1].into_iter().collect());
        let mut l = vec![1.0, 1.0, 1.0];
        apply_presence_frequency(&mut l, &[0, 0, 2], 0.5, 0.25);
        assert_eq!(l, vec![1.0 - 0.5 - 0.5, 1.0, 1.0 - 0.5 - 0.25]);
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        let logits = vec![10.0, 0.0, 0.0, 0.0];
        let p = SamplingParams {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.5),
            min_p: None,
        };
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            assert_eq!(sample(&mut logits.clone(), p, &mut rng), 0);
        }
    }
}
