"""Reads a run's TensorBoard event files with the real `tensorboard` package and checks them against the run's
metrics.jsonl: every step and evaluation metric, the learning rate, and the config text.

Pinned: tensorboard 2.21.0 (`.venv/bin/pip install tensorboard==2.21.0`).
Command: .venv/bin/python tools/bench/tensorboard_check.py RUN_DIR      (a run trained with logging.logger: TensorBoard)
"""
import json, math, sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = Path(sys.argv[1])
acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
acc.Reload()
tags = acc.Tags()
events = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
steps = [e for e in events if e["event"] == "step"]
evals = [e for e in events if e["event"] == "evaluation"]

def series(tag):
    return {s.step: s.value for s in acc.Scalars(tag)}

checks = []
for tag, key, rows in [("train/loss", "loss", steps), ("train/learning_rate", "lr", steps),
                       ("train/grad_norm", "grad_norm", steps), ("validation/loss", "validation_loss", evals)]:
    got = series(tag)
    ok = len(got) == len(rows) and all(math.isclose(got[r["step"]], r[key], rel_tol=1e-6, abs_tol=1e-12) for r in rows)
    checks.append((tag, len(got), ok))
if evals:
    tag = f"validation/{evals[0]['metric_name']}"
    got = series(tag)
    checks.append((tag, len(got), all(math.isclose(got[e["step"]], e["metric"], rel_tol=1e-6) for e in evals)))
texts = acc.Tensors("config") if "config" in tags.get("tensors", []) else []
config_ok = bool(texts) and "learning_rate" in texts[0].tensor_proto.string_val[0].decode()
checks.append(("config (text plugin)", len(texts), config_ok))
for tag, n, ok in checks:
    print(f"{'ok  ' if ok else 'FAIL'} {tag}: {n} points")
sys.exit(0 if all(ok for _, _, ok in checks) else 1)
