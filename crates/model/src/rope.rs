//! Rotary position embeddings in Hugging Face's layout (`rotate_half`, not interleaved), with `linear` and
//! `llama3` frequency scaling, as in transformers' `modeling_rope_utils.py`.

use candle_core::{DType, Device, Tensor};

use crate::config::{ModelConfig, RopeScaling};
use crate::error::Result;

/// Inverse frequencies `1 / theta^(2i/d)` for `i < d/2`, scaled as the config says. Computed in f32 like torch.
pub fn inverse_frequencies(cfg: &ModelConfig) -> Vec<f32> {
    let d = cfg.head_dim;
    let base = cfg.rope_theta as f32;
    let inv: Vec<f32> = (0..d)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / d as f32))
        .collect();
    match cfg.rope_scaling {
        RopeScaling::None => inv,
        RopeScaling::Linear { factor } => inv.iter().map(|f| f / factor as f32).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let (factor, low, high) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
            );
            let old_len = original_max_position_embeddings as f32;
            let low_freq_wavelen = old_len / low;
            let high_freq_wavelen = old_len / high;
            inv.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    if wavelen > low_freq_wavelen {
                        f / factor
                    } else if wavelen < high_freq_wavelen {
                        f
                    } else {
                        let smooth = (old_len / wavelen - low) / (high - low);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
    }
}

/// Precomputed cos/sin tables of shape `(max_positions, head_dim)`, grown on demand.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    inv_freq: Vec<f32>,
    cos: Tensor,
    sin: Tensor,
    dtype: DType,
}

impl RotaryEmbedding {
    /// Tables for `positions` positions in `dtype`.
    pub fn new(cfg: &ModelConfig, positions: usize, dtype: DType, device: &Device) -> Result<Self> {
        let inv_freq = inverse_frequencies(cfg);
        let (cos, sin) = tables(&inv_freq, positions, dtype, device)?;
        Ok(Self {
            inv_freq,
            cos,
            sin,
            dtype,
        })
    }

    /// cos and sin for positions `offset..offset+len`, each `(len, head_dim)`.
    pub fn cos_sin(&self, offset: usize, len: usize) -> Result<(Tensor, Tensor)> {
        let have = self.cos.dim(0)?;
        if offset + len > have {
            // Longer than precomputed: compute a larger table for this call.
            let (cos, sin) = tables(
                &self.inv_freq,
                (offset + len).next_power_of_two(),
                self.dtype,
                self.cos.device(),
            )?;
            return Ok((cos.narrow(0, offset, len)?, sin.narrow(0, offset, len)?));
        }
        Ok((
            self.cos.narrow(0, offset, len)?,
            self.sin.narrow(0, offset, len)?,
        ))
    }
}

fn tables(
    inv_freq: &[f32],
    positions: usize,
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = inv_freq.len();
    let mut cos = Vec::with_capacity(positions * half * 2);
    let mut sin = Vec::with_capacity(positions * half * 2);
    for p in 0..positions {
        for _ in 0..2 {
            for &f in inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
    }
    let shape = (positions, half * 2);
    Ok((
        Tensor::from_vec(cos, shape, device)?.to_dtype(dtype)?,
        Tensor::from_vec(sin, shape, device)?.to_dtype(dtype)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Architecture;

    fn cfg(scaling: RopeScaling) -> ModelConfig {
        ModelConfig {
            architecture: Architecture::Llama,
            vocab_size: 8,
            hidden_size: 64,
            intermediate_size: 8,
            num_layers: 1,
            num_heads: 1,
            num_kv_heads: 1,
            head_dim: 64,
            rms_norm_eps: 1e-5,
            rope_theta: 500_000.0,
            rope_scaling: scaling,
            max_position_embeddings: 64,
            tie_word_embeddings: false,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            sliding_window: None,
            bos_token_id: None,
            eos_token_ids: vec![],
        }
    }

    #[test]
    fn llama3_keeps_high_frequencies_and_divides_low_ones() {
        let plain = inverse_frequencies(&cfg(RopeScaling::None));
        let scaled = inverse_frequencies(&cfg(RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 32,
        }));
        assert_eq!(plain[0], scaled[0]);
        let last = plain.len() - 1;
        assert!((scaled[last] - plain[last] / 8.0).abs() < 1e-12);
    }
}
