"""Preference tuning (DPO) speed and memory: Ferrotune vs TRL's DPOTrainer on the same machine, in one invocation.

Both engines train LoRA (r 8, alpha 16, dropout 0.05, all seven linear modules of every layer) with the sigmoid DPO
loss (beta 0.2) against the reference model = the same backbone with its adapters switched off, recomputed every
step (TRL: `ref_model=None` with a PEFT model, `precompute_ref_log_probs=False`), AdamW, lr 1e-4 cosine without
warmup, gradient clipping at the same norm, batch 4 pairs, max_length 512, fp32, no gradient checkpointing (TRL's
DPOConfig turns it on by default; it is set off here, as Ferrotune's default), one epoch over the same pairs.
The pairs are the first --pairs rows of LLaMA-Factory's `dpo_en_demo.json` whose conversation is a single human
turn (the multi-turn and system-prompt rows are skipped, so both engines see the same prompt), formatted with the
backbone's chat template on both sides; the next --validation-pairs such rows are Ferrotune's validation file
(TRL runs no evaluation). A third run puts Ferrotune's causal-LM training of the same shape (the chosen answers
only) next to its DPO run.

Each run is its own process (peak RSS is its own, measured by /usr/bin/time); the DPO engines alternate their order
for --rounds rounds and the table shows the median of the rounds. Step time: median over optimizer steps, the
first excluded (Ferrotune: `step_seconds` of `metrics.jsonl`; TRL: a TrainerCallback from on_step_begin to
on_step_end). Tokens per step are the real (unpadded) tokens of the step's sequences: Ferrotune's DPO row is
padding-free; TRL pads the 2 x batch sequences to the longest (its padded count is printed below the table);
Ferrotune's causal-LM metric counts its padded batch (batch x longest). Reference: torch 2.15.0, transformers
5.24.0, peft 0.21.2, trl 1.16.0 (tools/reference-env.sh), torch.set_num_threads(os.cpu_count()).

Truncation: sequences longer than max_length are cut on both sides to max_length tokens, but not at the same end:
Ferrotune cuts the oldest prompt tokens (or, when the answer alone is longer, keeps the answer's start), TRL keeps
the start of prompt + answer (`truncation_mode="keep_start"`, its only non-deprecated mode) and drops the pairs
whose prompt alone fills max_length (the table's note says how many it kept). The token counts per
sequence, and so the work, are the same; the labelled tokens of cut sequences differ, so the losses are close but
not identical.

Command (after `cargo build --release`, `bash tools/reference-env.sh`, `ferrotune assets fetch`, and
`ferrotune backbone import-gguf <the demo .gguf> --out DIR`):
    .venv/bin/python tools/bench/dpo.py --ferrotune target/release/ferrotune --model DIR \\
        --data ~/.local/share/ferrotune/assets/llamafactory-0.9.5-data/dpo_en_demo.json [--pairs 32]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from importlib.metadata import version

p = argparse.ArgumentParser()
p.add_argument("--ferrotune")
p.add_argument("--model", required=True)
p.add_argument("--data", required=True)
p.add_argument("--pairs", type=int, default=64)
p.add_argument("--validation-pairs", type=int, default=4)
p.add_argument("--batch-size", type=int, default=4)
p.add_argument("--max-length", type=int, default=512)
p.add_argument("--lora-r", type=int, default=8)
p.add_argument("--learning-rate", type=float, default=1e-4)
p.add_argument("--beta", type=float, default=0.2)
p.add_argument("--gradient-clip", type=float, default=1.0)
p.add_argument("--rounds", type=int, default=2)
p.add_argument("--engines", default="ferrotune,trl,causal",
               help="runs to make, of ferrotune (DPO), trl (DPO) and causal (Ferrotune causal LM)")
p.add_argument("--role", default="driver", choices=["driver", "trl"])
p.add_argument("--train-file")
p.add_argument("--out")
args = p.parse_args()
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def trl_run():
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    rows = json.load(open(args.train_file))
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": r["instruction"]}],
                                  "chosen": [{"role": "assistant", "content": r["chosen_response"]}],
                                  "rejected": [{"role": "assistant", "content": r["rejected_response"]}]}
                                 for r in rows])
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa")
    times, tokens, padded, losses = [], [], [], []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **kw):
            times.append(time.perf_counter() - self.t0)

        def on_log(self, _args, _state, _control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    class Counting(DPOTrainer):
        def training_step(self, model, inputs, *a, **kw):
            tokens.append(int(inputs["attention_mask"].sum()))
            padded.append(inputs["input_ids"].numel())
            return super().training_step(model, inputs, *a, **kw)

    config = DPOConfig(output_dir=os.path.join(os.path.dirname(args.out), "trl-out"), beta=args.beta,
                       loss_type="sigmoid", per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=1,
                       learning_rate=args.learning_rate, lr_scheduler_type="cosine", warmup_steps=0, weight_decay=0.0,
                       max_grad_norm=args.gradient_clip, max_length=args.max_length, num_train_epochs=1,
                       precompute_ref_log_probs=False, disable_dropout=False,  # keep LoRA dropout, as Ferrotune
                       gradient_checkpointing=False,  # TRL defaults to True; Ferrotune to off
                       logging_steps=1, eval_strategy="no", save_strategy="no", report_to="none", use_cpu=True,
                       dataloader_num_workers=0, bf16=False, fp16=False, seed=0, disable_tqdm=True)
    peft = LoraConfig(r=args.lora_r, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM", target_modules=TARGETS)
    trainer = Counting(model=model, ref_model=None, args=config, train_dataset=dataset, processing_class=tok,
                       peft_config=peft, callbacks=[Timer()])
    kept = len(trainer.train_dataset)
    trainer.train()
    json.dump({"step_seconds": statistics.median(times[1:]), "steps": len(times),
               "tokens_per_second": statistics.median(k / t for k, t in zip(tokens[1:], times[1:])),
               "tokens_per_step": statistics.mean(tokens), "padded_tokens_per_step": statistics.mean(padded),
               "tokens_per_pair": sum(tokens) / kept, "final_loss": losses[-1], "mean_loss": statistics.mean(losses),
               "pairs": kept}, open(args.out, "w"))


def timed(cmd, **kw):
    """Runs cmd under /usr/bin/time; returns (wall seconds, peak RSS in MiB)."""
    rss_file = os.path.join(work, "rss.txt")
    t0 = time.time()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd, check=True, **kw)
    return time.time() - t0, int(open(rss_file).read().split()[-1]) / 1024


def run_trl():
    out = os.path.join(work, "trl.json")
    cmd = [sys.executable, __file__, "--role", "trl", "--model", args.model, "--data", args.data,
           "--train-file", train_file, "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
           "--lora-r", str(args.lora_r), "--learning-rate", str(args.learning_rate), "--beta", str(args.beta),
           "--gradient-clip", str(args.gradient_clip), "--out", out]
    wall, rss = timed(cmd, stdout=subprocess.DEVNULL)
    result = json.load(open(out))
    result["peak_rss_mb"], result["wall_s"] = rss, wall
    return result


def run_ferrotune(name, problem_type):
    cfg = os.path.join(work, f"{name}.yaml")
    subprocess.run([args.ferrotune, "-q", "config", "init", "--problem-type", problem_type, "--out", cfg, "--force"],
                   check=True, stdout=subprocess.DEVNULL)
    overrides = {
        "experiment_name": name, "llm_backbone": args.model, "output_directory": os.path.join(work, name),
        "dataset.train_dataframe": train_file, "dataset.validation_strategy": "custom",
        "dataset.validation_dataframe": validation_file, "dataset.system_column": "None",
        "dataset.use_chat_template": "true", "tokenizer.max_length": args.max_length,
        "training.batch_size": args.batch_size, "training.lora_r": args.lora_r, "training.lora_alpha": 16,
        "training.lora_dropout": 0.05, "training.learning_rate": args.learning_rate, "training.epochs": 1,
        "training.gradient_clip": args.gradient_clip, "training.evaluation_epochs": 1,
        "training.save_checkpoint": "disable", "prediction.metric": "Perplexity",
        "prediction.min_length_inference": 1, "prediction.max_length_inference": 1, "environment.seed": 0,
    }
    if problem_type == "text_dpo_modeling":
        overrides["training.beta"] = args.beta
    else:
        overrides["dataset.answer_column"] = "chosen_response"
    cmd = [args.ferrotune, "-q", "train", "--config", cfg]
    for k, v in overrides.items():
        cmd += [f"--{k}", str(v)]
    wall, rss = timed(cmd, stdout=subprocess.DEVNULL)
    events = [json.loads(l) for l in open(os.path.join(work, name, "metrics.jsonl"))]
    steps = [e for e in events if e.get("event") == "step"]
    step_tokens = [s["tokens_per_second"] * s["step_seconds"] for s in steps]
    return {"step_seconds": statistics.median(s["step_seconds"] for s in steps[1:]), "steps": len(steps),
            "tokens_per_second": statistics.median(s["tokens_per_second"] for s in steps[1:]),
            "tokens_per_step": statistics.mean(step_tokens), "tokens_per_pair": sum(step_tokens) / len(train_rows),
            "final_loss": steps[-1]["loss"], "mean_loss": statistics.mean(s["loss"] for s in steps),
            "peak_rss_mb": rss, "wall_s": wall}


if args.role == "trl":
    trl_run()
    sys.exit(0)

t_start = time.time()
work = tempfile.mkdtemp()
single = [r for r in json.load(open(args.data)) if [c["from"] for c in r["conversations"]] == ["human"]]
flat = [{"instruction": r["conversations"][0]["value"], "input": "", "chosen_response": r["chosen"]["value"],
         "rejected_response": r["rejected"]["value"]} for r in single]
train_rows = flat[: args.pairs]
validation_rows = flat[args.pairs: args.pairs + args.validation_pairs]
assert len(train_rows) == args.pairs and validation_rows, f"only {len(flat)} single-turn pairs in {args.data}"
train_file, validation_file = os.path.join(work, "train.json"), os.path.join(work, "validation.json")
json.dump(train_rows, open(train_file, "w"))
json.dump(validation_rows, open(validation_file, "w"))

FT_DPO, TRL_DPO, FT_LM = "ferrotune DPO", "TRL DPO", "ferrotune causal LM (chosen only)"
results = {FT_DPO: [], TRL_DPO: [], FT_LM: []}
ENGINE_FLAGS = {FT_DPO: "ferrotune", TRL_DPO: "trl", FT_LM: "causal"}
for r in range(args.rounds):
    order = [FT_DPO, TRL_DPO] if r % 2 == 0 else [TRL_DPO, FT_DPO]
    order = [e for e in order + [FT_LM] if ENGINE_FLAGS[e] in args.engines.split(",")]
    for engine in order:
        if engine == TRL_DPO:
            results[engine].append(run_trl())
        else:
            kind = "text_dpo_modeling" if engine == FT_DPO else "text_causal_language_modeling"
            results[engine].append(run_ferrotune(f"{'dpo' if engine == FT_DPO else 'lm'}-{r}", kind))
        x = results[engine][-1]
        print(f"round {r + 1}: {engine}: {x['steps']} steps, {x['step_seconds']:.2f} s/step, "
              f"{x['tokens_per_second']:.0f} tok/s, {x['peak_rss_mb']:.0f} MiB, {x['wall_s']:.0f} s", file=sys.stderr)


def med(engine, key):
    values = [x[key] for x in results[engine] if x.get(key) is not None]
    return statistics.median(values) if values else float("nan")


ref_step = med(TRL_DPO, "step_seconds")
print(f"# DPO (sigmoid, beta {args.beta}, reference = adapters off, every step) vs TRL {version('trl')}: "
      f"LoRA r{args.lora_r} all linear, AdamW lr {args.learning_rate:g} cosine, clip {args.gradient_clip:g}, "
      f"batch {args.batch_size} pairs, max_length {args.max_length}, fp32, {args.pairs} pairs "
      f"({next(v[0]['steps'] for v in results.values() if v)} steps), {os.cpu_count()} threads, median of {args.rounds} rounds")
print("| run | median step s | tokens per step (mean) | tokens/s (median step) | peak RSS (MiB) | final train loss "
      "(epoch mean) | step time ferrotune/TRL |")
print("|---|---|---|---|---|---|---|")
for engine in results:
    if not results[engine]:
        continue
    step = med(engine, "step_seconds")
    ratio = f"**{step / ref_step:.2f}×**" if engine == FT_DPO else ("1.00×" if engine == TRL_DPO else "–")
    print(f"| {engine} | {step:.2f} | {med(engine, 'tokens_per_step'):.0f} | {med(engine, 'tokens_per_second'):.0f} | "
          f"{med(engine, 'peak_rss_mb'):.0f} | {med(engine, 'final_loss'):.4f} ({med(engine, 'mean_loss'):.4f}) | "
          f"{ratio} |")
if results[FT_DPO] and results[TRL_DPO]:
    print(f"\nMean tokens per pair (chosen + rejected sequences, after truncation): ferrotune "
          f"{med(FT_DPO, 'tokens_per_pair'):.1f}, TRL {med(TRL_DPO, 'tokens_per_pair'):.1f}; TRL's padded batch: "
          f"{med(TRL_DPO, 'padded_tokens_per_step'):.0f} tokens per step ({results[TRL_DPO][0]['pairs']} of "
          f"{args.pairs} pairs kept by TRL: it drops pairs whose prompt alone fills max_length).")
print("Ferrotune's causal-LM tokens are its padded batch. Steps: "
      + ", ".join(f"{e} {results[e][0]['steps']}" for e in results if results[e])
      + ". Rounds (step s): " + "; ".join(f"{e} " + " / ".join(f"{x['step_seconds']:.2f}" for x in v)
                                        for e, v in results.items() if v)
      + f". Bench wall time {time.time() - t_start:.0f} s.")
