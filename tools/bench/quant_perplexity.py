"""Reference perplexity of a backbone kept in float32, bitsandbytes int8 and bitsandbytes NF4 (blocks of 64),
on the same texts `ferrotune score` reads (JSONL with a "text" field). Prints one JSON line per dtype.

Usage: .venv/bin/python tools/bench/quant_perplexity.py MODEL_DIR TEXTS.jsonl
(bitsandbytes 0.50.2 on the CPU; its 4-bit block size is 64 by default.)
"""
import json, math, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

model_dir, texts_path = sys.argv[1], sys.argv[2]
torch.set_num_threads(torch.get_num_threads())
texts = [json.loads(l)["text"] for l in open(texts_path) if l.strip()]
tok = AutoTokenizer.from_pretrained(model_dir)
configs = {
    "f32": dict(dtype=torch.float32),
    "int8": dict(quantization_config=BitsAndBytesConfig(load_in_8bit=True), dtype=torch.float32),
    "int4": dict(quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                        bnb_4bit_compute_dtype=torch.float32), dtype=torch.float32),
}
for name in sys.argv[3:] or configs:
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, device_map="cpu", **configs[name])
    except Exception as e:  # noqa: BLE001 - report and go on with the other dtypes
        print(json.dumps({"dtype": name, "error": str(e)[:300]}), flush=True)
        continue
    nll, count = 0.0, 0
    with torch.no_grad():
        for t in texts:
            ids = tok(t, return_tensors="pt").input_ids
            out = model(ids, labels=ids)
            n = ids.shape[1] - 1
            nll += out.loss.item() * n
            count += n
    print(json.dumps({"dtype": name, "tokens": count, "mean_nll": nll / count,
                      "perplexity": math.exp(nll / count)}), flush=True)
