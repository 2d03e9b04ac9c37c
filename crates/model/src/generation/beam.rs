//! Beam search as transformers runs it: each step keeps the `2·num_beams` best continuations over all beams;
//! those ending in a stop id become finished hypotheses (when ranked within the first `num_beams`), the others
//! fill the next beams. Hypotheses are scored `sum_logprobs / generated_len ^ length_penalty`.

use std::time::Instant;

use candle_core::{Tensor, D};

use super::{sampling, FinishReason, Generation, GenerationConfig};
use crate::error::Result;
use crate::models::Llama;
use crate::tokenizer::TextTokenizer;

struct Hypothesis {
    ids: Vec<u32>,
    score: f64,
    stopped: bool,
}

pub(super) fn beam_search(
    model: &Llama,
    tokenizer: &TextTokenizer,
    prompt_ids: &[u32],
    cfg: &GenerationConfig,
) -> Result<Generation> {
    let device = model.device();
    let n = cfg.num_beams;
    let start = Instant::now();
    let mut cache = model.new_cache();
    let first = model.forward_last(
        &Tensor::new(prompt_ids, device)?.unsqueeze(0)?,
        Some(&mut cache),
    )?;
    let prefill_time = start.elapsed();
    // Every beam starts as the prompt; only beam 0 counts at the first step.
    cache.reorder(&Tensor::new(vec![0u32; n], device)?)?;
    let mut logits = first.broadcast_as((n, first.dim(1)?))?.contiguous()?;
    let mut beams: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut scores: Vec<f64> = (0..n).map(|i| if i == 0 { 0.0 } else { -1e9 }).collect();
    let mut finished: Vec<Hypothesis> = Vec::new();
    let norm = |len: usize, score: f64| score / (len.max(1) as f64).powf(cfg.length_penalty);

    for step in 0..cfg.max_new_tokens {
        let mut rows = logits.to_vec2::<f32>()?;
        for (b, row) in rows.iter_mut().enumerate() {
            let history: Vec<u32> = prompt_ids.iter().chain(&beams[b]).copied().collect();
            sampling::apply_repetition_penalty(row, &history, cfg.repetition_penalty as f32);
            if step < cfg.min_new_tokens {
                sampling::suppress(row, &cfg.stop_token_ids);
            }
        }
        let vocab = rows[0].len();
        let processed = Tensor::new(rows, device)?;
        let log_probs = candle_nn::ops::log_softmax(&processed, D::Minus1)?.to_vec2::<f32>()?;
        let mut candidates: Vec<(f64, usize, u32)> = Vec::with_capacity(n * vocab);
        for (b, row) in log_probs.iter().enumerate() {
            for (t, &lp) in row.iter().enumerate() {
                if lp.is_finite() {
                    candidates.push((scores[b] + lp as f64, b, t as u32));
                }
            }
        }
        let keep = (2 * n).min(candidates.len());
        candidates.select_nth_unstable_by(keep.saturating_sub(1), |a, b| b.0.total_cmp(&a.0));
        candidates.truncate(keep);
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));

        let mut next_beams = Vec::with_capacity(n);
        let mut next_scores = Vec::with_capacity(n);
        let mut origins = Vec::with_capacity(n);
        let mut next_tokens = Vec::with_capacity(n);
        for (rank, &(score, b, token)) in candidates.iter().enumerate() {
            if cfg.stop_token_ids.contains(&token) {
                if rank < n {
                    let ids = beams[b].clone();
                    let len = ids.len() + 1;
                    finished.push(Hypothesis {
                        ids,
                        score: norm(len, score),
                        stopped: true,
                    });
                }
                continue;
            }
            let mut ids = beams[b].clone();
            ids.push(token);
            next_beams.push(ids);
            next_scores.push(score);
            origins.push(b as u32);
            next_tokens.push(token);
            if next_beams.len() == n {
                break;
            }
        }
        if next_beams.len() < n {
            break; // every continuation stops
        }
        beams = next_beams;
        scores = next_scores;
        finished.sort_by(|a, b| b.score.total_cmp(&a.score));
        finished.truncate(n);
        let cur_len = step + 1;
        let best_running = norm(cur_len, scores[0]);
        if finished.len() == n && finished[n - 1].score >= best_running {
            break;
        }
        if step + 1 == cfg.max_new_tokens {
            break;
        }
        cache.reorder(&Tensor::new(origins, device)?)?;
        let input = Tensor::new(next_tokens, device)?.unsqueeze(1)?;
        logits = model.forward_last(&input, Some(&mut cache))?;
    }
    for (ids, score) in beams.into_iter().zip(scores) {
        let len = ids.len();
        finished.push(Hypothesis {
            ids,
            score: norm(len, score),
            stopped: false,
        });
    }
    let best = finished
        .into_iter()
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .expect("beam search keeps at least one hypothesis");
    let (text, finish_reason) =
        cut_at_stop_string(tokenizer.decode(&best.ids, true)?, cfg, best.stopped);
    let total = start.elapsed();
    Ok(Generation {
        token_ids: best.ids,
        text,
        finish_reason,
        prefill_time,
        decode_time: total.saturating_sub(prefill_time),
    })
}

fn cut_at_stop_string(
    text: String,
    cfg: &GenerationConfig,
    stopped: bool,
) -> (String, FinishReason) {
    let cut = cfg
        .stop_strings
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min();
    match cut {
        Some(i) => (text[..i].to_string(), FinishReason::StopString),
        None if stopped => (text, FinishReason::StopToken),
        None => (text, FinishReason::Length),
    }
}
