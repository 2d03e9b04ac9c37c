//! The fused attention against the composed attention the decoder uses without it: values and gradients.

use super::*;
use candle_core::{Device, Var};

/// The composed attention (as the decoder computes it without this op), on (b, t, heads·d) projections.
fn reference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    spec: &AttentionSpec,
    cos: &Tensor,
    sin: &Tensor,
    mask: &Tensor,
) -> Tensor {
    let (b, t, _) = q.dims3().unwrap();
    let (nh, nkv, d) = (spec.num_heads, spec.num_kv_heads, spec.head_dim);
    let heads = |x: &Tensor, n| x.reshape((b, t, n, d)).unwrap().transpose(1, 2).unwrap();
    let q = crate::ops::apply_rope_reference(&heads(q, nh), cos, sin).unwrap();
    let k = crate::ops::apply_rope_reference(&heads(k, nkv), cos, sin).unwrap();
    let v = heads(v, nkv).contiguous().unwrap();
    let n_rep = nh / nkv;
    let q = (q.contiguous().unwrap() * (1.0 / (d as f64).sqrt()))
        .unwrap()
        .reshape((b, nkv, n_rep * t, d))
        .unwrap();
    let scores = q.matmul(&k.contiguous().unwrap().t().unwrap()).unwrap();
    let probs = crate::ops::softmax_reference(&scores.broadcast_add(mask).unwrap()).unwrap();
    probs
        .matmul(&v)
        .unwrap()
        .reshape((b, nh, t, d))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((b, t, nh * d))
        .unwrap()
}

fn check(spec: AttentionSpec, b: usize, t: usize, sequence_ids: Option<Vec<Vec<u32>>>) {
    let dev = Device::Cpu;
    let (nh, nkv, d) = (spec.num_heads, spec.num_kv_heads, spec.head_dim);
    let var =
        |n| Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, n * d), &dev).unwrap()).unwrap();
    let (q, k, v) = (var(nh), var(nkv), var(nkv));
    // Positions: 0..t, or restarting per packed sample.
    let positions: Vec<Vec<u32>> = match &sequence_ids {
        None => vec![(0..t as u32).collect(); b],
        Some(ids) => ids
            .iter()
            .map(|row| {
                let mut pos = Vec::new();
                for i in 0..row.len() {
                    let p = if i > 0 && row[i] == row[i - 1] {
                        pos[i - 1] + 1
                    } else {
                        0
                    };
                    pos.push(p);
                }
                pos
            })
            .collect(),
    };
    let angle = |bi: usize, i: usize, c: usize| {
        positions[bi][i] as f32 / 10f32.powf((c % (d / 2)) as f32 / 4.0)
    };
    let table = |f: fn(f32) -> f32| -> Vec<f32> {
        (0..b)
            .flat_map(|bi| (0..t).flat_map(move |i| (0..d).map(move |c| f(angle(bi, i, c)))))
            .collect()
    };
    let (cos, sin) = (table(f32::cos), table(f32::sin));
    let cos_t = Tensor::from_slice(&cos, (b, 1, t, d), &dev).unwrap();
    let sin_t = Tensor::from_slice(&sin, (b, 1, t, d), &dev).unwrap();
    let n_rep = nh / nkv;
    let layout = TokenLayout {
        cos,
        sin,
        per_token: true,
        sequence_ids: sequence_ids.clone(),
    };
    let probe = FusedAttention {
        spec: spec.clone(),
        layout: layout.clone(),
        saved: Mutex::new(None),
    };
    let mask: Vec<f32> = (0..b)
        .flat_map(|bi| {
            let probe = &probe;
            (0..n_rep).flat_map(move |_| {
                (0..t).flat_map(move |i| {
                    (0..t).map(move |j| {
                        if probe.visible(bi, i, j) {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                })
            })
        })
        .collect();
    let mask = Tensor::from_vec(mask, (b, 1, n_rep * t, t), &dev).unwrap();
    let ours = causal_attention(&q, &k, &v, &spec, layout).unwrap();
    let theirs = reference(&q, &k, &v, &spec, &cos_t, &sin_t, &mask);
    let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    assert!(
        max_diff(&ours, &theirs) < 1e-5,
        "forward differs by {}",
        max_diff(&ours, &theirs)
    );
    let coef = Tensor::randn(0f32, 1.0, ours.shape(), &dev).unwrap();
    let grads = |y: &Tensor| (y * &coef).unwrap().sum_all().unwrap().backward().unwrap();
    let (ga, gb) = (grads(&ours), grads(&theirs));
    for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
        let diff = max_diff(
            ga.get(x.as_tensor()).unwrap(),
            gb.get(x.as_tensor()).unwrap(),
        );
        assert!(diff < 1e-4, "gradient of {name} differs by {diff}");
    }
}

#[test]
fn matches_the_composed_attention_with_grouped_heads() {
    let spec = AttentionSpec {
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        sliding_window: None,
    };
    check(spec, 2, 7, None);
}

#[test]
fn matches_with_a_sliding_window_and_one_kv_head() {
    let spec = AttentionSpec {
        num_heads: 3,
        num_kv_heads: 1,
        head_dim: 4,
        sliding_window: Some(3),
    };
    check(spec, 1, 9, None);
}

#[test]
fn matches_on_packed_rows_with_padding() {
    let spec = AttentionSpec {
        num_heads: 2,
        num_kv_heads: 2,
        head_dim: 6,
        sliding_window: None,
    };
    check(
        spec,
        2,
        8,
        Some(vec![
            vec![1, 1, 1, 2, 2, 3, 0, 0],
            vec![1, 1, 1, 1, 1, 2, 2, 2],
        ]),
    );
}
