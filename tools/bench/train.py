"""LoRA training speed and memory: Ferrotune vs transformers+PEFT on the same machine, in one invocation.

Both engines train LoRA (r, alpha 16, dropout 0.05, all seven linear modules of every layer) with AdamW on the same
rows of an Alpaca-format file, formatted with the backbone's chat template (prompt tokens masked), batch size B,
right-padded to the longest row of the batch, fp32, for the same number of optimizer steps. Each run is its own
process (peak RSS is its own, measured by /usr/bin/time); the engines alternate for --rounds rounds and the table
shows the median of the rounds. Reference: torch 2.15.0, transformers 5.24.0, peft 0.21.2,
torch.set_num_threads(os.cpu_count()).

Workloads (issue 5):
  kernel  --rows 48, batch 4, max_length 256: tokens/s (padded batch tokens per second of a training step, first
          step excluded, median over steps), median step time, peak RSS, and the step's useful FLOP/s as a share
          of this CPU's f32 GEMM peak (measured here with torch/MKL, and for ferrotune's own GEMM).
  user    one epoch over --rows rows (all of them by default) at max_length 512, validation on --validation-rows
          held-out rows: wall time of the whole run (load, train, validate) and the final validation loss
          (token-averaged cross-entropy over answer tokens).

Command (after `cargo build --release`, `bash tools/reference-env.sh`, `ferrotune assets fetch`, and
`ferrotune backbone import-gguf <the demo .gguf> --out DIR`):
    .venv/bin/python tools/bench/train.py --ferrotune target/release/ferrotune --model DIR \\
        --data ~/.local/share/ferrotune/assets/llamafactory-0.9.5-data/alpaca_en_demo.json [--workload user]
"""
import argparse, json, math, os, random, statistics, subprocess, sys, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("--ferrotune")
p.add_argument("--model", required=True)
p.add_argument("--data", required=True)
p.add_argument("--workload", default="kernel", choices=["kernel", "user"])
p.add_argument("--rows", type=int)
p.add_argument("--validation-rows", type=int, default=50)
p.add_argument("--batch-size", type=int, default=4)
p.add_argument("--max-length", type=int)
p.add_argument("--lora-r", type=int, default=8)
p.add_argument("--learning-rate", type=float, default=2e-4)
p.add_argument("--rounds", type=int, default=2)
p.add_argument("--gemm-example", help="path of ferrotune's gemm_peak example binary (prints GFLOP/s)")
p.add_argument("--role", default="driver", choices=["driver", "reference", "gemm"])
p.add_argument("--train-file")
p.add_argument("--validation-file")
p.add_argument("--out")
args = p.parse_args()
if args.max_length is None:
    args.max_length = 256 if args.workload == "kernel" else 512
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def encode(tok, rows):
    """(input ids, labels) per row: the chat-templated prompt masked, the answer and EOS labelled."""
    samples = []
    for r in rows:
        prompt = r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "")
        msgs = [{"role": "user", "content": prompt}]
        p_ids = tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True), add_special_tokens=False).input_ids
        a_ids = tok(r["output"] + tok.eos_token, add_special_tokens=False).input_ids
        ids = (p_ids + a_ids)[-args.max_length:]
        labels = ([-100] * len(p_ids) + a_ids)[-args.max_length:]
        samples.append((ids, labels))
    return samples


def reference():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=TARGETS))
    samples = encode(tok, json.load(open(args.train_file)))
    random.Random(0).shuffle(samples)
    pad = tok.pad_token_id or 0

    def batches(items):
        for i in range(0, len(items), args.batch_size):
            batch = items[i:i + args.batch_size]
            n = max(len(s[0]) for s in batch)
            yield (torch.tensor([s[0] + [pad] * (n - len(s[0])) for s in batch]),
                   torch.tensor([s[1] + [-100] * (n - len(s[1])) for s in batch]),
                   torch.tensor([[1] * len(s[0]) + [0] * (n - len(s[0])) for s in batch]))

    steps = math.ceil(len(samples) / args.batch_size)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=args.learning_rate, weight_decay=0.0)
    sched = get_cosine_schedule_with_warmup(opt, 0, steps)
    model.train()
    times, tokens = [], []
    for ids, lab, mask in batches(samples):
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
        tokens.append(ids.numel())
    result = {"tokens_per_second": statistics.median(k / t for k, t in zip(tokens[1:], times[1:])),
              "step_seconds": statistics.median(times[1:]), "steps": len(times)}
    if args.validation_file:
        model.eval()
        nll, count = 0.0, 0
        with torch.no_grad():
            for ids, lab, mask in batches(encode(tok, json.load(open(args.validation_file)))):
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
                target = lab[:, 1:]
                losses = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1),
                                                           ignore_index=-100, reduction="sum")
                nll += losses.item()
                count += (target != -100).sum().item()
        result["validation_loss"] = nll / count
    json.dump(result, open(args.out, "w"))


def torch_gemm_peak():
    """GFLOP/s of a square 2048 matmul in f32 and bf16 with torch (MKL / oneDNN), best of 5."""
    import torch
    torch.set_num_threads(os.cpu_count())
    out = {}
    for name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        a @ b
        best = min(timeit(lambda: a @ b) for _ in range(5))
        out[name] = 2 * 2048 ** 3 / best / 1e9
    json.dump(out, open(args.out, "w"))


def timeit(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def timed(cmd, **kw):
    """Runs cmd under /usr/bin/time; returns (wall seconds, peak RSS in MB)."""
    rss_file = os.path.join(work, "rss.txt")
    t0 = time.time()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd, check=True, **kw)
    return time.time() - t0, int(open(rss_file).read().split()[-1]) / 1024


def run_reference():
    out = os.path.join(work, "ref.json")
    cmd = [sys.executable, __file__, "--role", "reference", "--model", args.model, "--data", args.data,
           "--train-file", train_file, "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
           "--lora-r", str(args.lora_r), "--learning-rate", str(args.learning_rate), "--out", out]
    if validation_file:
        cmd += ["--validation-file", validation_file]
    wall, rss = timed(cmd)
    result = json.load(open(out))
    result["peak_rss_mb"], result["wall_s"] = rss, wall
    return result


def run_ferrotune(round_index):
    name = f"bench-{round_index}"
    cfg = os.path.join(work, f"{name}.yaml")
    validation = (f"  validation_strategy: custom\n  validation_dataframe: {validation_file}\n" if validation_file
                  else "  validation_size: 0.01\n")
    open(cfg, "w").write(f"""llm_backbone: {args.model}
output_directory: {work}/{{experiment_name}}
experiment_name: {name}
dataset:
  train_dataframe: {train_file}
  system_column: None
  use_chat_template: true
{validation}tokenizer:
  max_length: {args.max_length}
training:
  batch_size: {args.batch_size}
  learning_rate: {args.learning_rate}
  lora_r: {args.lora_r}
  lora_alpha: 16
  lora_dropout: 0.05
  save_checkpoint: disable
environment:
  seed: 0
prediction:
  min_length_inference: 1
  max_length_inference: 1
""")
    wall, rss = timed([args.ferrotune, "-q", "train", "--config", cfg], stdout=subprocess.DEVNULL)
    events = [json.loads(l) for l in open(os.path.join(work, name, "metrics.jsonl"))]
    steps = [e for e in events if e.get("event") == "step"]
    result = {"tokens_per_second": statistics.median(s["tokens_per_second"] for s in steps[1:]),
              "step_seconds": statistics.median(s["step_seconds"] for s in steps[1:]), "steps": len(steps),
              "peak_rss_mb": rss, "wall_s": wall}
    evals = [e for e in events if e.get("event") == "evaluation"]
    if evals:
        result["validation_loss"] = evals[-1]["validation_loss"]
    return result


def useful_flops_per_step(rows):
    """The work a LoRA step must do on the real (unpadded) tokens of a mean batch, counted once for both engines:
    frozen linear layers forward and input-gradient (2+2 FLOPs per weight and token), the adapters (forward and
    both gradients), causal attention (QKᵀ and PV forward, four products backward, half of each square), and the
    LM head at the labelled positions (forward and input gradient)."""
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    nh, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    d = cfg.get("head_dim") or h // nh
    vocab = cfg["vocab_size"]
    shapes = [(nh * d, h), (nkv * d, h), (nkv * d, h), (h, nh * d), (inter, h), (inter, h), (h, inter)]
    linear = sum(o * i for o, i in shapes)
    lora = sum(args.lora_r * (o + i) for o, i in shapes)
    from transformers import AutoTokenizer
    samples = encode(AutoTokenizer.from_pretrained(args.model), rows)
    tokens = sum(len(s[0]) for s in samples)
    labelled = sum(sum(1 for x in s[1][1:] if x != -100) for s in samples)
    attention = sum(6 * nh * d * len(s[0]) ** 2 for s in samples)  # 6 products × ½ square × 2 FLOPs
    total = layers * (4 * linear * tokens + 6 * lora * tokens + attention) + 4 * vocab * h * labelled
    return total / math.ceil(len(samples) / args.batch_size)


if args.role == "reference":
    reference()
    sys.exit(0)
if args.role == "gemm":
    torch_gemm_peak()
    sys.exit(0)

work = tempfile.mkdtemp()
rows = json.load(open(args.data))
random.Random(0).shuffle(rows)
validation_file = None
if args.workload == "user":
    validation_rows, rows = rows[: args.validation_rows], rows[args.validation_rows:]
    validation_file = os.path.join(work, "validation.json")
    json.dump(validation_rows, open(validation_file, "w"))
rows = rows[: args.rows or (48 if args.workload == "kernel" else len(rows))]
train_file = os.path.join(work, "train.json")
json.dump(rows, open(train_file, "w"))

results = {"transformers+PEFT": [], "ferrotune": []}
for r in range(args.rounds):
    results["transformers+PEFT"].append(run_reference())
    results["ferrotune"].append(run_ferrotune(r))
    print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]['tokens_per_second']:.0f} tok/s {v[-1]['wall_s']:.0f} s"
                                          for k, v in results.items()), file=sys.stderr)


def med(engine, key):
    values = [x[key] for x in results[engine] if x.get(key) is not None]
    return statistics.median(values) if values else float("nan")


ref, ours = "transformers+PEFT", "ferrotune"
print(f"# {args.workload} workload: LoRA r{args.lora_r} all linear, AdamW, batch {args.batch_size}, max_length "
      f"{args.max_length}, fp32, {len(rows)} rows, {os.cpu_count()} threads, median of {args.rounds} alternating rounds")
if args.workload == "kernel":
    gemm_out = os.path.join(work, "gemm.json")
    subprocess.run([sys.executable, __file__, "--role", "gemm", "--model", args.model, "--data", args.data,
                    "--out", gemm_out], check=True)
    peak = json.load(open(gemm_out))
    if args.gemm_example:
        ours_gemm = json.loads(subprocess.run([args.gemm_example], check=True, capture_output=True, text=True).stdout)
        peak["ferrotune_f32"] = ours_gemm["f32"]
    flops = useful_flops_per_step(rows)
    print("| engine | tokens/s (median step) | step s | peak RSS MB | useful GFLOP/s | share of f32 GEMM peak |")
    print("|---|---|---|---|---|---|")
    for engine in (ref, ours):
        step = med(engine, "step_seconds")
        gflops = flops / step / 1e9
        print(f"| {engine} | {med(engine, 'tokens_per_second'):.0f} | {step:.2f} | {med(engine, 'peak_rss_mb'):.0f} | "
              f"{gflops:.1f} | {gflops / peak['f32']:.0%} |")
    print(f"| ratio ferrotune/reference | **{med(ours, 'tokens_per_second') / med(ref, 'tokens_per_second'):.2f}x** | | "
          f"**{med(ours, 'peak_rss_mb') / med(ref, 'peak_rss_mb'):.2f}x** | | |")
    print(f"\nGEMM peak (2048³, {os.cpu_count()} threads): torch f32 {peak['f32']:.0f} GFLOP/s, torch bf16 "
          f"{peak['bf16']:.0f} GFLOP/s" + (f", ferrotune f32 (gemm crate) {peak['ferrotune_f32']:.0f} GFLOP/s"
                                          if "ferrotune_f32" in peak else "")
          + f"; useful work {flops / 1e9:.0f} GFLOP per step")
else:
    print("| engine | wall s (load, 1 epoch, validation) | steps | tokens/s (median step) | peak RSS MB | validation loss |")
    print("|---|---|---|---|---|---|")
    for engine in (ref, ours):
        print(f"| {engine} | {med(engine, 'wall_s'):.0f} | {results[engine][0]['steps']} | "
              f"{med(engine, 'tokens_per_second'):.0f} | {med(engine, 'peak_rss_mb'):.0f} | {med(engine, 'validation_loss'):.4f} |")
    print(f"| ratio ferrotune/reference | **{med(ours, 'wall_s') / med(ref, 'wall_s'):.2f}x** | | | "
          f"{med(ours, 'peak_rss_mb') / med(ref, 'peak_rss_mb'):.2f}x | "
          f"{(med(ours, 'validation_loss') / med(ref, 'validation_loss') - 1) * 100:+.2f} % |")
