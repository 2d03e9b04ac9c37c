"""Greedy generation speed: Ferrotune vs transformers on the demo backbone, same machine, one run.

Pinned reference: torch 2.15.0, transformers 5.24.0 (see tools/reference-env.sh), fp32, eager attention,
torch.set_num_threads(os.cpu_count()). Both sides decode exactly --new-tokens tokens greedily (EOS ignored via
min_new_tokens) from the same chat prompt, with a KV cache; runs alternate, the median of --repeats is reported.
Decode tokens/s excludes the prompt (prefill) and the first token, on both sides.

Command (after `cargo build --release` and `bash tools/reference-env.sh`):
    .venv/bin/python tools/bench/generate.py --ferrotune target/release/ferrotune \
        --model ~/.local/share/ferrotune/backbones/<imported demo folder>
(`ferrotune generate --prompt hi` once imports the demo backbone; its folder is under $FERROTUNE_HOME/backbones.)
"""
import argparse, json, os, platform, statistics, subprocess, time

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

p = argparse.ArgumentParser()
p.add_argument("--ferrotune", required=True)
p.add_argument("--model", required=True)
p.add_argument("--prompt", default="Write a short story about a robot who learns to paint.")
p.add_argument("--new-tokens", type=int, default=128)
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
args = p.parse_args()

torch.set_num_threads(os.cpu_count())
tdtype = torch.float32 if args.dtype == "f32" else torch.bfloat16
tok = AutoTokenizer.from_pretrained(args.model)
model = AutoModelForCausalLM.from_pretrained(args.model, dtype=tdtype, attn_implementation="eager").eval()
rendered = tok.apply_chat_template([{"role": "user", "content": args.prompt}], tokenize=False, add_generation_prompt=True)
ids = tok(rendered, add_special_tokens=False, return_tensors="pt").input_ids


def torch_run():
    n = args.new_tokens
    with torch.inference_mode():
        t0 = time.perf_counter()
        model.generate(ids, do_sample=False, max_new_tokens=1, min_new_tokens=1)
        t1 = time.perf_counter()
        out = model.generate(ids, do_sample=False, max_new_tokens=n, min_new_tokens=n)
        t2 = time.perf_counter()
    assert out.shape[1] - ids.shape[1] == n
    prefill = t1 - t0
    return {"tok_s": (n - 1) / ((t2 - t1) - prefill), "prefill_s": prefill}


def ferrotune_run():
    n = args.new_tokens
    r = subprocess.run(
        [args.ferrotune, "generate", "--quiet", "--model", args.model, "--dtype", args.dtype, "--chat",
         "--prompt", args.prompt, "--max-new-tokens", str(n), "--min-new-tokens", str(n), "--temperature", "0",
         "--stats"],
        capture_output=True, text=True, check=True)
    stats = json.loads(r.stderr.strip().splitlines()[-1])
    assert stats["new_tokens"] == n, stats
    return {"tok_s": stats["decode_tokens_per_second"], "prefill_s": stats["prefill_seconds"]}


torch_run()  # warm-up
ferrotune_run()
results = {"transformers": [], "ferrotune": []}
for _ in range(args.repeats):
    results["transformers"].append(torch_run())
    results["ferrotune"].append(ferrotune_run())

med = {k: {m: statistics.median(r[m] for r in v) for m in ("tok_s", "prefill_s")} for k, v in results.items()}
print(f"# greedy generation, {args.new_tokens} new tokens, prompt {ids.shape[1]} tokens, {args.dtype}, "
      f"{os.cpu_count()} threads, {platform.processor() or platform.machine()}")
print(f"# torch {torch.__version__}, transformers {transformers.__version__}; median of {args.repeats}")
print("| engine | decode tokens/s | prefill s |")
print("|---|---|---|")
for k in ("transformers", "ferrotune"):
    print(f"| {k} | {med[k]['tok_s']:.1f} | {med[k]['prefill_s']:.3f} |")
print(f"| ratio ferrotune/transformers | {med['ferrotune']['tok_s'] / med['transformers']['tok_s']:.2f}x | |")
