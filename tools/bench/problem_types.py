"""Speed and memory per problem type: Ferrotune's causal-LM LoRA run next to classification, regression (LoRA,
with the linear head) and full fine-tuning of the same shape, in one invocation (stdlib only: no reference engine
runs here; the DPO comparison with TRL is tools/bench/dpo.py).

Every run trains the demo backbone (fp32) on the same --rows rows of an Alpaca-format file, batch 4, max_length
256, one epoch, AdamW lr 1e-4 (full fine-tuning: 1e-5), LoRA r 8 / alpha 16 / dropout 0.05 on all seven linear
modules, evaluated before and after training on the next --validation-rows rows. The labels come from the rows:
classification learns whether the row has an `input` text (`has_input`, 0/1, BinaryCrossEntropyLoss, AUC);
regression learns log2 of the answer's length in characters (`answer_bits`, MSELoss, MSE). The head types read
the prompt only; so that their sequences are as long as the causal-LM run's (prompt + answer), their prompt is
the instruction, input and answer columns joined — the same tokens per step, the same shape. Each run is its own
process; peak RSS from /usr/bin/time; tokens/s and step time are medians over optimizer steps, the first excluded
(`metrics.jsonl`).

Command (after `cargo build --release`, `ferrotune assets fetch`, and an f32 HF folder of the demo backbone):
    python3 tools/bench/problem_types.py --ferrotune target/release/ferrotune --model DIR \\
        --data ~/.local/share/ferrotune/assets/llamafactory-0.9.5-data/alpaca_en_demo.json
"""
import argparse, json, math, os, statistics, subprocess, sys, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("--ferrotune", required=True)
p.add_argument("--model", required=True)
p.add_argument("--data", required=True)
p.add_argument("--rows", type=int, default=48)
p.add_argument("--validation-rows", type=int, default=32)
p.add_argument("--only", default="lm,classification,regression,full")
p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
               help="an override for every run (e.g. training.epochs=3), after the runs' own")
args = p.parse_args()

work = tempfile.mkdtemp()
rows = json.load(open(args.data))
table = [{"instruction": r["instruction"], "input": r.get("input", ""), "output": r["output"],
          "has_input": int(bool(r.get("input", "").strip())),
          "answer_bits": round(math.log2(max(len(r["output"]), 1)), 4)} for r in rows]
train_rows = table[: args.rows]
validation_rows = table[args.rows: args.rows + args.validation_rows]
train_file, validation_file = os.path.join(work, "train.json"), os.path.join(work, "validation.json")
json.dump(train_rows, open(train_file, "w"))
json.dump(validation_rows, open(validation_file, "w"))


def run(name, problem_type, extra):
    cfg = os.path.join(work, f"{name}.yaml")
    subprocess.run([args.ferrotune, "-q", "config", "init", "--problem-type", problem_type, "--out", cfg, "--force"],
                   check=True, stdout=subprocess.DEVNULL)
    overrides = {
        "experiment_name": name, "llm_backbone": args.model, "output_directory": os.path.join(work, name),
        "dataset.train_dataframe": train_file, "dataset.validation_strategy": "custom",
        "dataset.validation_dataframe": validation_file, "dataset.system_column": "None",
        "tokenizer.max_length": 256, "training.batch_size": 4, "training.lora_r": 8, "training.lora_alpha": 16,
        "training.lora_dropout": 0.05, "training.learning_rate": 1e-4, "training.epochs": 1,
        "training.evaluation_epochs": 1, "training.evaluate_before_training": "true",
        "training.save_checkpoint": "last", "prediction.min_length_inference": 1,
        "prediction.max_length_inference": 1, "environment.seed": 0,
    }
    overrides.update(extra)
    overrides.update(kv.split("=", 1) for kv in args.set)
    cmd = [args.ferrotune, "-q", "train", "--config", cfg]
    for k, v in overrides.items():
        cmd += [f"--{k}", str(v)]
    rss_file = os.path.join(work, "rss.txt")
    t0 = time.time()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - t0
    events = [json.loads(l) for l in open(os.path.join(work, name, "metrics.jsonl"))]
    steps = [e for e in events if e.get("event") == "step"]
    evals = [e for e in events if e.get("event") == "evaluation"]
    return {"tokens_per_second": statistics.median(s["tokens_per_second"] for s in steps[1:]),
            "step_seconds": statistics.median(s["step_seconds"] for s in steps[1:]),
            "tokens_per_step": statistics.mean(s["tokens_per_second"] * s["step_seconds"] for s in steps),
            "steps": len(steps), "metric_name": evals[-1]["metric_name"], "before": evals[0]["metric"],
            "after": evals[-1]["metric"], "loss_before": evals[0]["validation_loss"],
            "loss_after": evals[-1]["validation_loss"],
            "peak_rss_mb": int(open(rss_file).read().split()[-1]) / 1024, "wall_s": wall,
            "out": os.path.join(work, name)}


RUNS = {
    "lm": ("causal LM, LoRA", "text_causal_language_modeling", {}),
    "classification": ("classification, LoRA + head", "text_causal_classification_modeling",
                       {"dataset.answer_column": "has_input", "dataset.prompt_column": "[instruction, input, output]"}),
    "regression": ("regression, LoRA + head", "text_causal_regression_modeling",
                   {"dataset.answer_column": "answer_bits", "dataset.prompt_column": "[instruction, input, output]"}),
    "full": ("causal LM, full fine-tuning", "text_causal_language_modeling",
             {"training.lora": "false", "training.learning_rate": 1e-5}),
}
results = {}
for key in args.only.split(","):
    label, problem_type, extra = RUNS[key]
    results[key] = run(key, problem_type, extra)
    r = results[key]
    print(f"{label}: {r['steps']} steps, {r['tokens_per_second']:.0f} tok/s, {r['peak_rss_mb']:.0f} MiB, "
          f"{r['wall_s']:.0f} s", file=sys.stderr)

base = results.get("lm")
print(f"\n{args.rows} training rows, {args.validation_rows} validation rows, batch 4, max_length 256, fp32, "
      f"{os.cpu_count()} cores; work folder {work}\n")
print("| run | tokens/step | step s | tokens/s | × causal-LM tok/s | peak RSS MiB | × causal-LM RSS | "
      "validation metric before → after | validation loss before → after |")
print("|---|---|---|---|---|---|---|---|---|")
for key, r in results.items():
    ratio = lambda k: f"{r[k] / base[k]:.2f}×" if base else "–"
    print(f"| {RUNS[key][0]} | {r['tokens_per_step']:.0f} | {r['step_seconds']:.2f} | {r['tokens_per_second']:.0f} | "
          f"{ratio('tokens_per_second')} | {r['peak_rss_mb']:.0f} | {ratio('peak_rss_mb')} | "
          f"{r['metric_name']} {r['before']:.4g} → {r['after']:.4g} | {r['loss_before']:.4g} → {r['loss_after']:.4g} |")
