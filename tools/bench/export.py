"""Export, measured and checked against the real tools, in one run: for each `ferrotune export` format the
seconds and peak RSS (GNU time), the file size; the merged Hugging Face folder's logits in transformers against
PEFT's backbone + adapter; each GGUF's logits in llama.cpp (llama-cpp-python) against transformers' merged
model, argmax agreement, and llama.cpp's tokenization against the HF tokenizer; the LoRA adapter GGUF applied by
llama.cpp on a base GGUF against PEFT.

Pinned: torch 2.15.0, transformers 5.24.0, peft 0.21.2 (tools/reference-env.sh), llama-cpp-python 0.3.36
(`CMAKE_BUILD_PARALLEL_LEVEL=1 .venv/bin/pip install llama-cpp-python==0.3.36`, built from its sdist).
Command (a finished run, its float backbone folder, optionally a GGUF of that backbone for the adapter check):
  .venv/bin/python tools/bench/export.py --ferrotune target/release/ferrotune --run RUN_DIR --backbone DIR \
      [--base-gguf FILE.gguf] [--types f32,f16,q8_0,q4_0,q4_k_m,q5_k_m,q6_k] --work /tmp/export-bench
"""
import argparse, json, os, shutil, subprocess, sys

import numpy as np
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.set_num_threads(2)
p = argparse.ArgumentParser()
p.add_argument("--ferrotune", required=True)
p.add_argument("--run", required=True)
p.add_argument("--backbone", required=True)
p.add_argument("--base-gguf")
p.add_argument("--types", default="f32,f16,bf16,q8_0,q4_0,q4_k_m,q5_k_m,q6_k")
p.add_argument("--work", default="/tmp/export-bench")
p.add_argument("--text", default="<|prompt|>Give three tips for staying healthy.</s><|answer|>Eat well, sleep, and move.")
a = p.parse_args()
shutil.rmtree(a.work, ignore_errors=True)
os.makedirs(a.work)

def export(name, *args):
    out = os.path.join(a.work, name)
    r = subprocess.run(["/usr/bin/time", "-f", "%e %M", a.ferrotune, "-q", "export", a.run, "--out", out, *args],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"export {args} failed:\n{r.stderr}")
    secs, kb = r.stderr.strip().splitlines()[-1].split()
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    return out, float(secs), int(kb) / 1024, size / 1e6

rows = []
hf_dir, s, rss, mb = export("hf", "--format", "hf")
tok = AutoTokenizer.from_pretrained(hf_dir)
ids = tok(a.text, return_tensors="pt").input_ids
with torch.no_grad():
    base = AutoModelForCausalLM.from_pretrained(a.backbone, dtype=torch.float32, attn_implementation="eager")
    peft = PeftModel.from_pretrained(base, os.path.join(a.run, "adapter")).eval()
    want = peft(ids).logits[0].numpy()
    merged = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager").eval()
    got = merged(ids).logits[0].numpy()
hf_diff = float(np.abs(got - want).max())
rows.append(("hf (" + json.load(open(os.path.join(hf_dir, "config.json")))["torch_dtype"] + ")", s, rss, mb,
             f"transformers merged vs PEFT: max |Δlogit| {hf_diff:.2e}"))

try:
    import llama_cpp
except ImportError:
    llama_cpp = None
    print("llama_cpp not importable: GGUF checks skipped (see the docstring to install it)")

def llama_logits(path, lora=None):
    kw = dict(model_path=path, n_ctx=256, logits_all=True, n_threads=2, verbose=False)
    if lora:
        kw["lora_path"] = lora
    llm = llama_cpp.Llama(**kw)
    toks = ids[0].tolist()
    llm.reset()
    llm.eval(toks)
    out = np.array(llm.scores[: len(toks)])
    return llm, out

corpus = ["Hello world, 123 apples!", "  two spaces\nnew line\ttab", "<|im_start|>user\nHi<|im_end|>",
          "Ünïcödé 🙂 and 12345", a.text]
FTYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
          "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M", "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K"}

def tensor_types(path):
    import gguf
    return {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}

def llama_quantize(src, t):
    """llama.cpp's own llama-quantize of our f32 GGUF to type t (the reference for the type mix)."""
    import ctypes
    dst = os.path.join(a.work, f"llama-quantize.{t}.gguf")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FTYPES[t])
    params.nthread = 2
    if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)) != 0:
        sys.exit(f"llama-quantize {t} failed")
    return dst

f32_gguf = None
for t in a.types.split(","):
    out, s, rss, mb = export(f"gguf-{t}", "--format", "gguf", "--gguf-type", t)
    note = ""
    if llama_cpp:
        path = [os.path.join(out, f) for f in os.listdir(out) if f.endswith(".gguf")][0]
        if t == "f32":
            f32_gguf = path
        llm, logits = llama_logits(path)
        d = np.abs(logits - got)
        agree = float((logits.argmax(-1) == got.argmax(-1)).mean())
        same_tok = all(llm.tokenize(x.encode(), add_bos=False, special=True) == tok(x, add_special_tokens=False).input_ids
                       for x in corpus)
        note = f"llama.cpp vs transformers merged: max |Δlogit| {d.max():.3f}, argmax agree {agree:.0%}, tokenizer {'same' if same_tok else 'DIFFERS'}"
        del llm
        if t in FTYPES and f32_gguf:
            ref = llama_quantize(f32_gguf, t)
            ours, theirs = tensor_types(path), tensor_types(ref)
            same = sum(ours[k] == theirs.get(k) for k in ours)
            _, ref_logits = llama_logits(ref)
            rd = np.abs(ref_logits - got).max()
            ragree = float((ref_logits.argmax(-1) == got.argmax(-1)).mean())
            rmb = os.path.getsize(ref) / 1e6
            note += (f"; llama-quantize {t}: {rmb:.1f} MB, same type for {same}/{len(ours)} tensors, "
                     f"max |Δlogit| {rd:.3f}, argmax agree {ragree:.0%}")
            if same != len(ours):
                diff = [(k, ours[k], theirs.get(k)) for k in ours if ours[k] != theirs.get(k)][:4]
                note += f" (differ: {diff})"
    rows.append((f"gguf {t}", s, rss, mb, note))

out, s, rss, mb = export("gguf-adapter", "--format", "gguf-adapter")
note = ""
if llama_cpp and a.base_gguf:
    path = [os.path.join(out, f) for f in os.listdir(out) if f.endswith(".gguf")][0]
    _, with_lora = llama_logits(a.base_gguf, lora=path)
    _, without = llama_logits(a.base_gguf)
    d = np.abs(with_lora - want).max()
    d0 = np.abs(without - want).max()
    agree = float((with_lora.argmax(-1) == want.argmax(-1)).mean())
    note = f"llama.cpp base + LoRA vs PEFT: max |Δlogit| {d:.3f} (base alone {d0:.3f}), argmax agree {agree:.0%}"
rows.append(("gguf-adapter", s, rss, mb, note))

print(f"\n{'format':<16} {'seconds':>8} {'peak RSS MB':>12} {'size MB':>9}  check")
for name, s, rss, mb, note in rows:
    print(f"{name:<16} {s:>8.2f} {rss:>12.0f} {mb:>9.1f}  {note}")
