"""LoRA training speed and memory: Ferrotune vs transformers+PEFT on the demo backbone, same machine, one run.

Both sides train LoRA (r, alpha, all linear layers but the head, dropout 0.05) with AdamW on the same data file
(alpaca_en_demo rows formatted with the backbone's chat template, prompt tokens masked), batch size B,
max_length L, fp32, for the same number of optimizer steps; each runs in its own process so peak RSS is its own.
Tokens/s counts padded batch tokens per second of training steps (the first step, warm-up, excluded), median
over steps. Reference: torch 2.15.0, transformers 5.24.0, peft 0.21.2, torch.set_num_threads(os.cpu_count()).

Command (after `cargo build --release`, `bash tools/reference-env.sh` and `ferrotune assets fetch`):
    .venv/bin/python tools/bench/train.py --ferrotune target/release/ferrotune \
        --model ~/.local/share/ferrotune/backbones/<imported demo folder> \
        --data ~/.local/share/ferrotune/assets/llamafactory-0.9.5-data/alpaca_en_demo.json
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("--ferrotune")
p.add_argument("--model", required=True)
p.add_argument("--data", required=True)
p.add_argument("--rows", type=int, default=48)
p.add_argument("--batch-size", type=int, default=4)
p.add_argument("--max-length", type=int, default=256)
p.add_argument("--lora-r", type=int, default=8)
p.add_argument("--role", default="driver", choices=["driver", "reference"])
p.add_argument("--out")
args = p.parse_args()


def reference():
    import random
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    rows = json.load(open(args.data))
    random.Random(0).shuffle(rows)
    rows = rows[: args.rows]
    samples = []
    for r in rows:
        prompt = r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "")
        msgs = [{"role": "user", "content": prompt}]
        p_ids = tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True), add_special_tokens=False).input_ids
        a_ids = tok(r["output"] + tok.eos_token, add_special_tokens=False).input_ids
        ids = (p_ids + a_ids)[-args.max_length:]
        labels = ([-100] * len(p_ids) + a_ids)[-args.max_length:]
        samples.append((ids, labels))
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=2e-4)
    model.train()
    times, tokens = [], []
    for i in range(0, len(samples), args.batch_size):
        batch = samples[i:i + args.batch_size]
        n = max(len(s[0]) for s in batch)
        ids = torch.tensor([s[0] + [tok.pad_token_id or 0] * (n - len(s[0])) for s in batch])
        lab = torch.tensor([s[1] + [-100] * (n - len(s[1])) for s in batch])
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=lab).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
        tokens.append(ids.numel())
    tps = [k / t for k, t in zip(tokens[1:], times[1:])]
    json.dump({"tokens_per_second": statistics.median(tps), "step_seconds": statistics.median(times[1:]), "steps": len(times)}, open(args.out, "w"))


def timed(cmd, **kw):
    """Runs cmd under /usr/bin/time; returns (wall seconds, peak RSS in MB)."""
    rss_file = os.path.join(work, "rss.txt")
    t0 = time.time()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd, check=True, **kw)
    return time.time() - t0, int(open(rss_file).read().split()[-1]) / 1024


if args.role == "reference":
    reference()
    sys.exit(0)

work = tempfile.mkdtemp()
ref_out = os.path.join(work, "ref.json")
ref_wall, ref_rss = timed([sys.executable, __file__, "--role", "reference", "--model", args.model, "--data", args.data, "--rows", str(args.rows),
                "--batch-size", str(args.batch_size), "--max-length", str(args.max_length), "--lora-r", str(args.lora_r), "--out", ref_out])
ref = json.load(open(ref_out))
ref["peak_rss_mb"], ref["wall_s"] = ref_rss, ref_wall

cfg = os.path.join(work, "cfg.yaml")
fraction = args.rows / len(json.load(open(args.data)))
open(cfg, "w").write(f"""llm_backbone: {args.model}
output_directory: {work}/{{experiment_name}}
experiment_name: bench
dataset:
  train_dataframe: {args.data}
  system_column: None
  use_chat_template: true
  data_sample: {fraction}
  data_sample_choice: [Train]
  validation_size: 0.01
tokenizer:
  max_length: {args.max_length}
training:
  batch_size: {args.batch_size}
  learning_rate: 0.0002
  lora_r: {args.lora_r}
  lora_alpha: 16
  save_checkpoint: disable
environment:
  seed: 0
prediction:
  min_length_inference: 1
  max_length_inference: 1
""")
wall, rss = timed([args.ferrotune, "-q", "train", "--config", cfg], stdout=subprocess.DEVNULL)
steps = [json.loads(l) for l in open(os.path.join(work, "bench", "metrics.jsonl")) if '"event":"step"' in l]
ours = {"tokens_per_second": statistics.median(s["tokens_per_second"] for s in steps[1:]), "steps": len(steps),
        "peak_rss_mb": rss, "wall_s": wall}
print(f"# LoRA r{args.lora_r} all linear, AdamW, batch {args.batch_size}, max_length {args.max_length}, fp32, {args.rows} rows, {os.cpu_count()} threads")
print("| engine | tokens/s (median step) | peak RSS MB | steps |")
print("|---|---|---|---|")
print(f"| transformers+PEFT | {ref['tokens_per_second']:.0f} | {ref['peak_rss_mb']:.0f} | {ref['steps']} |")
print(f"| ferrotune | {ours['tokens_per_second']:.0f} | {ours['peak_rss_mb']:.0f} | {ours['steps']} |")
print(f"| ratio ferrotune/reference | {ours['tokens_per_second'] / ref['tokens_per_second']:.2f}x | {ours['peak_rss_mb'] / ref['peak_rss_mb']:.2f}x | |")
