//! The names and shapes of a Llama-family checkpoint's tensors, as Hugging Face writes them: what loading reads
//! and what the header-only folder check verifies.

use crate::config::ModelConfig;

/// Every tensor [`crate::models::Llama::load`] reads from a checkpoint of config `cfg`, with the shape it must have: what
/// [`crate::check_folder`] verifies from the safetensors headers alone. `has_lm_head`: the checkpoint stores
/// `lm_head.weight` (a tied embedding without one reuses `model.embed_tokens.weight`).
pub(crate) fn expected_tensors(cfg: &ModelConfig, has_lm_head: bool) -> Vec<(String, Vec<usize>)> {
    let (h, i, d) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
    let (q_out, kv_out) = (cfg.num_heads * d, cfg.num_kv_heads * d);
    let mut all = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, h],
    )];
    for layer in 0..cfg.num_layers {
        let p = format!("model.layers.{layer}");
        all.push((format!("{p}.input_layernorm.weight"), vec![h]));
        all.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
        let linears = [
            ("self_attn.q_proj", q_out, h, cfg.qkv_bias),
            ("self_attn.k_proj", kv_out, h, cfg.qkv_bias),
            ("self_attn.v_proj", kv_out, h, cfg.qkv_bias),
            ("self_attn.o_proj", h, q_out, cfg.o_bias),
            ("mlp.gate_proj", i, h, cfg.mlp_bias),
            ("mlp.up_proj", i, h, cfg.mlp_bias),
            ("mlp.down_proj", h, i, cfg.mlp_bias),
        ];
        for (name, out_dim, in_dim, bias) in linears {
            all.push((format!("{p}.{name}.weight"), vec![out_dim, in_dim]));
            if bias {
                all.push((format!("{p}.{name}.bias"), vec![out_dim]));
            }
        }
    }
    all.push(("model.norm.weight".to_string(), vec![h]));
    if has_lm_head || !cfg.tie_word_embeddings {
        all.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, h]));
    }
    all
}
