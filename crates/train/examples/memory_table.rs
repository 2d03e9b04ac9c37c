//! Which Llama-family backbones fit a LoRA run in a memory budget, at each backbone dtype: the run's
//! [`MemoryEstimate`] (exact weight bytes from each model's config; activations and runtime as calibrated on
//! measured runs, docs/performance.md) for well-known shapes.
//!
//! `cargo run --release -p ferrotune-train --example memory_table [-- BUDGET_GIB [BATCH MAX_LENGTH]]`
//! (default: 24 GiB, batch 1 × 512 tokens, gradient checkpointing, LoRA r=8 on all linear layers).

use ferrotune_model::config::{HfConfig, ModelConfig};
use ferrotune_model::lora::LoraSpec;
use ferrotune_model::{DType, Quantization};
use ferrotune_train::memory::{MemoryEstimate, RunShape};

/// (name, hidden, intermediate, layers, heads, kv heads, vocab, tied embeddings) from the models' config.json.
type Shape = (&'static str, usize, usize, usize, usize, usize, usize, bool);

const SHAPES: [Shape; 7] = [
    ("SmolLM2-135M", 576, 1536, 30, 9, 3, 49152, true),
    ("Llama-3.2-1B", 2048, 8192, 16, 32, 8, 128256, true),
    ("Llama-3.2-3B", 3072, 8192, 28, 24, 8, 128256, true),
    ("Llama-3.1-8B", 4096, 14336, 32, 32, 8, 128256, false),
    ("Qwen2.5-14B", 5120, 13824, 48, 40, 8, 152064, false),
    ("Qwen2.5-32B", 5120, 27648, 64, 40, 8, 152064, false),
    ("Llama-3.1-70B", 8192, 28672, 80, 64, 8, 128256, false),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let budget_gib: f64 = args.first().map_or(Ok(24.0), |a| a.parse())?;
    let batch: usize = args.get(1).map_or(Ok(1), |a| a.parse())?;
    let max_length: usize = args.get(2).map_or(Ok(512), |a| a.parse())?;
    let lora = LoraSpec {
        r: 8,
        alpha: 16.0,
        dropout: 0.0,
        use_rslora: false,
        use_dora: false,
        target_modules: Vec::new(),
    };
    let dtypes = [
        ("float32", DType::F32, Quantization::None),
        ("bfloat16", DType::BF16, Quantization::None),
        ("int8", DType::F32, Quantization::Int8),
        (
            "int4",
            DType::F32,
            Quantization::Nf4 {
                double_quant: false,
            },
        ),
        (
            "int4+bf16",
            DType::BF16,
            Quantization::Nf4 { double_quant: true },
        ),
    ];
    println!(
        "LoRA r=8 on all linear layers, batch {batch} × {max_length} tokens, gradient checkpointing; estimated peak GiB (✓ fits {budget_gib} GiB)\n"
    );
    print!("| model | parameters |");
    for (name, ..) in dtypes {
        print!(" {name} |");
    }
    println!("\n|---|---|{}", "---|".repeat(dtypes.len()));
    for (name, hidden, inter, layers, heads, kv, vocab, tied) in SHAPES {
        let hf: HfConfig = serde_json::from_value(serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "vocab_size": vocab, "hidden_size": hidden,
            "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv, "tie_word_embeddings": tied, "max_position_embeddings": 8192
        }))?;
        let cfg = ModelConfig::from_hf(&hf)?;
        let params = cfg.parameter_counts().total() as f64 / 1e9;
        print!("| {name} | {params:.2} B |");
        for (_, compute, quantization) in dtypes {
            let estimate = MemoryEstimate::estimate(
                &cfg,
                &RunShape {
                    compute,
                    quantization,
                    lora: &lora,
                    batch_size: batch,
                    max_length,
                    gradient_checkpointing: true,
                    full_fine_tuning: false,
                },
            );
            let gib = estimate.total() as f64 / (1u64 << 30) as f64;
            let mark = if gib <= budget_gib { " ✓" } else { "" };
            print!(" {gib:.1}{mark} |");
        }
        println!();
    }
    Ok(())
}
