#!/usr/bin/env python3
"""The web studio's own costs, side by side with the CLI on the same model (stdlib only).

    python3 tools/bench/studio.py --binary target/release/ferrotune --backbone DIR [--rounds 3]

Starts `ferrotune serve` in a temporary home, registers BACKBONE, imports a 16-row toy dataset, trains one
experiment (1 epoch, batch 4) through the API, then measures:
  - chat through the API (SSE) vs `ferrotune generate --chat --adapter` on the same prompt (greedy, 64 new tokens):
    decode tokens/s as each reports it, time to the first token (API) and the whole answer;
  - the server's latency for the experiments list, the settings schema and the new-experiment page (the largest);
  - the server's resident memory idle and with the chat model loaded.
Prints a markdown table.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request

PROMPT = "Give three tips for staying healthy."


def request(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def chat(base, name, max_new):
    body = {"messages": [{"role": "user", "content": PROMPT}], "settings": {"max_new_tokens": max_new, "repetition_penalty": 1.0}}
    req = urllib.request.Request(base + f"/api/experiments/{name}/chat", data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    t0 = time.perf_counter()
    first = None
    done = None
    event = None
    with urllib.request.urlopen(req, timeout=600) as r:
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                if event == "token" and first is None:
                    first = time.perf_counter() - t0
                if event == "done":
                    done = json.loads(line[5:])
                if event == "error":
                    raise SystemExit(f"chat failed: {line}")
    return first, time.perf_counter() - t0, done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/ferrotune")
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="studio-bench-")
    env = dict(os.environ, FERROTUNE_HOME=os.path.join(tmp, "home"))
    server = subprocess.Popen([a.binary, "serve", "--port", "0", "--no-demo"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        base = server.stdout.readline().strip().rsplit(" ", 1)[-1]
        rows = [{"instruction": f"Add {i} and {2 * i}.", "input": "", "output": str(3 * i)} for i in range(16)]
        data = os.path.join(tmp, "toy.json")
        with open(data, "w") as f:
            json.dump(rows, f)
        request(base, "POST", "/api/backbones", {"name": "bench", "path": a.backbone})
        request(base, "POST", "/api/datasets", {"name": "toy", "path": data})
        idle = rss_mb(server.pid)
        values = {"llm_backbone": a.backbone, "experiment_name": "bench", "training.batch_size": "4",
                  "training.learning_rate": "0.0002", "dataset.validation_size": "0.25", "prediction.max_length_inference": "8"}
        request(base, "POST", "/api/experiments", {"values": values, "dataset": "toy", "start_anyway": True})
        while True:
            info = json.loads(request(base, "GET", "/api/experiments/bench"))
            if info["status"] in ("finished", "failed", "stopped"):
                break
            time.sleep(0.5)
        if info["status"] != "finished":
            raise SystemExit(f"training did not finish: {info.get('message')}")
        adapter = os.path.join(info["output_dir"], "adapter")
        api_runs, cli_runs = [], []
        for _ in range(a.rounds):
            api_runs.append(chat(base, "bench", a.max_new_tokens))
            t0 = time.perf_counter()
            out = subprocess.run([a.binary, "-q", "generate", "--model", a.backbone, "--adapter", adapter, "--chat", "--prompt", PROMPT,
                                  "--max-new-tokens", str(a.max_new_tokens), "--stats"], env=env, capture_output=True, text=True, check=True)
            stats = json.loads(out.stderr.strip().splitlines()[-1])
            cli_runs.append((time.perf_counter() - t0, stats))
        loaded = rss_mb(server.pid)
        lat = {}
        for label, path in [("GET /api/experiments", "/api/experiments"), ("GET /api/schema", "/api/schema"),
                            ("GET /experiments/new (page)", "/experiments/new"), ("GET /experiments/bench (page)", "/experiments/bench")]:
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                request(base, "GET", path)
                times.append(time.perf_counter() - t0)
            lat[label] = statistics.median(times) * 1000
        api_tps = statistics.median(d["tokens_per_second"] for _, _, d in api_runs)
        cli_tps = statistics.median(s["decode_tokens_per_second"] for _, s in cli_runs)
        print(f"# studio bench: {a.backbone}, {a.max_new_tokens} new tokens, greedy, median of {a.rounds}\n")
        print("| | studio chat (API, SSE) | `ferrotune generate` | ratio |")
        print("|---|---|---|---|")
        print(f"| decode tokens/s | {api_tps:.1f} | {cli_tps:.1f} | {api_tps / cli_tps:.2f}× |")
        print(f"| first token, s (warm model) | {statistics.median(f for f, _, _ in api_runs[1:] or api_runs):.3f} | – | |")
        print(f"| whole answer, s (first round loads the model) | {api_runs[0][1]:.2f} / {statistics.median(w for _, w, _ in api_runs[1:] or api_runs):.2f} warm | {statistics.median(w for w, _ in cli_runs):.2f} (process incl. load) | |")
        print("\n| request | median ms (20) |\n|---|---|")
        for k, v in lat.items():
            print(f"| {k} | {v:.1f} |")
        print(f"\nserver resident memory: {idle:.0f} MB idle, {loaded:.0f} MB with the chat model loaded")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
