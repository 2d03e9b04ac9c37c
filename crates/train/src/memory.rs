//! The memory a training run will need, estimated from the backbone's `config.json` and the experiment before
//! anything is loaded, so a run that cannot fit says so up front (and the estimate is printed with every run).
//!
//! Weights and adapter state are exact counts. Activations follow what the autograd graph keeps per token and
//! layer (the inputs of every op that needs them for its backward), at the full `batch × max_length` (a step
//! computes only the real tokens, so this is an upper bound). The composed-op coefficients were checked against
//! peak RSS — within −5 %…+10 % on the demo backbone and a 1 B model with gradient checkpointing
//! (docs/performance.md, "Memory and quantized backbones"); the fused f32 ops keep about half as much, and their
//! coefficients are counted from what each op keeps (a 4 × 256 demo step without checkpointing: estimate
//! 3.1 GiB, measured peak 2.5 GiB).

use ferrotune_model::config::ModelConfig;
use ferrotune_model::lora::LoraSpec;
use ferrotune_model::{DType, Quantization};
use serde::Serialize;

/// An estimate of a training run's peak memory, in bytes, by part.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct MemoryEstimate {
    /// The frozen backbone: decoder linear weights in their storage, the rest in the compute dtype.
    pub frozen_weights: u64,
    /// LoRA parameters, their gradients and two AdamW moments (all f32).
    pub adapters: u64,
    /// What the autograd graph keeps for the backward pass of one micro-batch.
    pub activations: u64,
    /// Logits and their gradient at the labelled positions.
    pub logits: u64,
    /// The process itself: tokenizer, data, allocator slack.
    pub runtime: u64,
}

/// What the estimate depends on besides the model.
#[derive(Debug, Clone)]
pub struct RunShape<'a> {
    pub compute: DType,
    pub quantization: Quantization,
    pub lora: &'a LoraSpec,
    /// Sequences one forward and backward pass holds (`crate::settings::sequences_per_pass`).
    pub batch_size: usize,
    pub max_length: usize,
    pub gradient_checkpointing: bool,
    /// `training.lora: false`: every weight trains (f32), with its gradient and two AdamW moments.
    pub full_fine_tuning: bool,
}

/// Fitted: f32 values kept per token per layer, as multiples of the hidden size, the intermediate size and the
/// attention scores (per head and key position), by the composed ops (16-bit compute) …
const HIDDEN_COPIES: f64 = 24.0;
const INTERMEDIATE_COPIES: f64 = 6.0;
const SCORE_COPIES: f64 = 4.0;
/// … and by the fused f32 ops (`ferrotune_model::kernels`): the norm, projection, rotated q/k/v, attention,
/// residual and MLP outputs, and one probability matrix per head.
const FUSED_HIDDEN_COPIES: f64 = 12.0;
const FUSED_INTERMEDIATE_COPIES: f64 = 3.0;
const FUSED_SCORE_COPIES: f64 = 1.0;
/// Logits at labelled positions: the logits, their log-softmax and the gradient.
const LOGIT_COPIES: f64 = 3.0;
const RUNTIME_BYTES: u64 = 400 << 20;

impl MemoryEstimate {
    /// Estimates the peak of a run of `model` shaped as `run`.
    pub fn estimate(model: &ModelConfig, run: &RunShape) -> Self {
        let counts = model.parameter_counts();
        let compute = run.compute.size_in_bytes() as f64;
        let linear_bytes = run.quantization.bytes_per_weight().unwrap_or(compute);
        let frozen_weights =
            counts.decoder_linears as f64 * linear_bytes + counts.other as f64 * compute;

        let lora_params: usize = model
            .linear_shapes()
            .iter()
            .filter(|(name, _)| run.lora.targets(name))
            .map(|(_, (out, inp))| {
                run.lora.r * (out + inp) + if run.lora.use_dora { *out } else { 0 }
            })
            .sum::<usize>()
            * model.num_layers;
        let adapters = if run.full_fine_tuning {
            // The weights are counted above; their gradients and moments add 12 bytes each (frozen layers
            // would add less: this is the upper bound).
            (counts.decoder_linears + counts.other) as f64 * 12.0
        } else {
            lora_params as f64 * 16.0
        };

        let tokens = (run.batch_size * run.max_length) as f64;
        // Activations are f32 except the frozen matmuls' outputs in the compute dtype; count them as f32.
        let (hidden_copies, intermediate_copies, score_copies) = if run.compute == DType::F32 {
            (
                FUSED_HIDDEN_COPIES,
                FUSED_INTERMEDIATE_COPIES,
                FUSED_SCORE_COPIES,
            )
        } else {
            (HIDDEN_COPIES, INTERMEDIATE_COPIES, SCORE_COPIES)
        };
        let per_layer_token = hidden_copies * model.hidden_size as f64
            + intermediate_copies * model.intermediate_size as f64;
        let scores = score_copies
            * (run.batch_size * model.num_heads * run.max_length * run.max_length) as f64;
        let one_layer = tokens * per_layer_token * 4.0 + scores * 4.0;
        let activations = if run.gradient_checkpointing {
            // Each layer's input is kept; one layer at a time is recomputed with its full graph.
            model.num_layers as f64 * tokens * model.hidden_size as f64 * 4.0 + one_layer
        } else {
            model.num_layers as f64 * one_layer
        };
        let logits = tokens * model.vocab_size as f64 * 4.0 * LOGIT_COPIES;
        Self {
            frozen_weights: frozen_weights as u64,
            adapters: adapters as u64,
            activations: activations as u64,
            logits: logits as u64,
            runtime: RUNTIME_BYTES,
        }
    }

    /// The sum of the parts.
    pub fn total(&self) -> u64 {
        self.frozen_weights + self.adapters + self.activations + self.logits + self.runtime
    }

    /// One line for the log: total and parts in GiB.
    pub fn describe(&self) -> String {
        format!(
            "estimated peak memory {}: weights {}, trained weights' gradients and optimizer state {}, activations {}, logits {}, runtime {}",
            gib(self.total()),
            gib(self.frozen_weights),
            gib(self.adapters),
            gib(self.activations),
            gib(self.logits),
            gib(self.runtime)
        )
    }
}

/// `1.23 GiB`.
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// `123.4 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// This process's peak resident set so far (`VmHWM`), when known.
pub fn peak_resident() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Memory the system can still give this process (`MemAvailable`), when known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2() -> ModelConfig {
        // SmolLM2-135M's shape.
        let json = r#"{"architectures":["LlamaForCausalLM"],"vocab_size":49152,"hidden_size":576,
            "intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,
            "tie_word_embeddings":true,"max_position_embeddings":8192}"#;
        ModelConfig::from_hf(&serde_json::from_str(json).unwrap()).unwrap()
    }

    fn spec() -> LoraSpec {
        LoraSpec {
            r: 8,
            alpha: 16.0,
            dropout: 0.0,
            use_rslora: false,
            use_dora: false,
            target_modules: vec![],
        }
    }

    #[test]
    fn counts_smollm2_parameters_and_orders_the_dtypes() {
        let cfg = smollm2();
        assert_eq!(cfg.parameter_counts().total(), 134_515_008);
        let lora = spec();
        let at = |compute, quantization| {
            MemoryEstimate::estimate(
                &cfg,
                &RunShape {
                    compute,
                    quantization,
                    lora: &lora,
                    batch_size: 4,
                    max_length: 256,
                    gradient_checkpointing: false,
                    full_fine_tuning: false,
                },
            )
        };
        let f32 = at(DType::F32, Quantization::None);
        let bf16 = at(DType::BF16, Quantization::None);
        let int8 = at(DType::F32, Quantization::Int8);
        let int4 = at(
            DType::F32,
            Quantization::Nf4 {
                double_quant: false,
            },
        );
        assert_eq!(f32.frozen_weights, 134_515_008 * 4);
        assert_eq!(bf16.frozen_weights, 134_515_008 * 2);
        assert!(
            int4.frozen_weights < int8.frozen_weights && int8.frozen_weights < f32.frozen_weights
        );
        // LoRA r=8 on all seven projections of 30 layers: 81 408 × 30 parameters, 16 bytes each.
        assert_eq!(f32.adapters, 2_442_240 * 16);
        assert_eq!(f32.activations, int4.activations);
    }
}
