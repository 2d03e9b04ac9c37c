"""A random-init Llama-family backbone in real Hugging Face format, for memory measurements at a size no demo
asset has: transformers' LlamaForCausalLM with the given shape, saved as bf16 safetensors, plus the demo
backbone's tokenizer files (its vocabulary must fit the embedding).

Usage: .venv/bin/python tools/bench/random_backbone.py TOKENIZER_DIR OUT_DIR [hidden layers intermediate heads kv_heads]
Default shape (1.07 B parameters): hidden 2048, 16 layers, intermediate 8192, 32 heads, 8 KV heads, vocab 49152
(Llama-3.2-1B's body with SmolLM2's vocabulary).
"""
import shutil, sys
from pathlib import Path
import torch
from transformers import LlamaConfig, LlamaForCausalLM

tok_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
hidden, layers, inter, heads, kv = (int(x) for x in (sys.argv[3:8] or (2048, 16, 8192, 32, 8)))
cfg = LlamaConfig(vocab_size=49152, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=4096,
                  tie_word_embeddings=True, rope_theta=500000.0, bos_token_id=1, eos_token_id=2)
torch.manual_seed(0)
with torch.device("cpu"):
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
print("parameters:", sum(p.numel() for p in model.parameters()))
model.save_pretrained(out, safe_serialization=True)
for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
    if (tok_dir / name).exists():
        shutil.copy(tok_dir / name, out / name)
