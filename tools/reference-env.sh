#!/usr/bin/env bash
# Creates the git-ignored reference venv (.venv) used by tools/fixtures/*.py and tools/bench/*.py.
# Python is only ever a reference for Ferrotune; the product itself is pure Rust.
# Usage: bash tools/reference-env.sh      (~5.5 GB: PyPI's torch wheel; takes a few minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check \
  torch==2.15.0 transformers==5.24.0 peft==0.21.2 gguf==0.19.0 accelerate==1.15.0 \
  safetensors==0.8.0 tokenizers==0.23.3 numpy==2.4.6 trl==1.16.0 scikit-learn==1.9.1
# What CI needs too (mlflow for the tracker's test).
.venv/bin/pip install -q --disable-pip-version-check -r tools/requirements-ci.txt
.venv/bin/python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
# Optional: llama.cpp itself (the GGUF export checks and the decode-speed reference), built from its sdist on one
# core (~15 min): FERROTUNE_LLAMA_CPP=1 bash tools/reference-env.sh
if [ "${FERROTUNE_LLAMA_CPP:-0}" = 1 ]; then
  CMAKE_BUILD_PARALLEL_LEVEL=1 .venv/bin/pip install -q --disable-pip-version-check llama-cpp-python==0.3.36
fi
