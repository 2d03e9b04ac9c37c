#!/usr/bin/env bash
# Peak RSS and final validation loss of the same LoRA run on the demo backbone with the frozen backbone kept as
# float32, bfloat16, int8 and int4 (NF4): `ferrotune demo` with the overrides below, one dtype after the other.
# Prints a markdown table; each run's log stays in output/$NAME-<dtype>/logs.log (NAME default bench-quant).
# Usage: cargo build --release && [DTYPES="int8 int4"] bash tools/bench/quant_memory.sh [--section.key value …]
# (later overrides win, e.g. `--llm_backbone /path/to/other/backbone`)
set -euo pipefail
timing=$(mktemp)
cd "$(dirname "$0")/../.."
bin=target/release/ferrotune
common=(--training.batch_size 2 --training.grad_accumulation 2 --tokenizer.max_length 256
        --architecture.gradient_checkpointing true --dataset.data_sample 0.06 --training.epochs 1
        --training.evaluate_before_training false --prediction.max_length_inference 16 "$@")
printf '| backbone_dtype | decoder linear weights (MiB) | all frozen weights (MiB) | peak RSS (GiB) | wall (s) | final validation loss |\n|---|---|---|---|---|---|\n'
for dtype in ${DTYPES:-float32 bfloat16 int8 int4}; do
  out=output/${NAME:-bench-quant}-$dtype
  rm -rf "$out"
  /usr/bin/time -f '%M %e' -o "$timing" "$bin" --quiet demo --prompt "Hi" \
    --experiment_name "${NAME:-bench-quant}-$dtype" --output_directory "$out" \
    --architecture.backbone_dtype "$dtype" "${common[@]}" > /dev/null
  read -r rss_kb wall < "$timing"
  line=$(grep -o 'frozen weights in memory: .*' "$out/logs.log" | head -1)
  all=$(echo "$line" | sed -E 's/frozen weights in memory: ([0-9.]+) MiB.*/\1/')
  linears=$(echo "$line" | sed -E 's/.*decoder linear weights ([0-9.]+) MiB.*/\1/')
  loss=$(grep '"event":"evaluation"' "$out/metrics.jsonl" | tail -1 | sed -E 's/.*"validation_loss":([0-9.]+).*/\1/')
  printf '| %s | %s | %s | %.2f | %s | %.4f |\n' "$dtype" "$linears" "$all" "$(echo "$rss_kb/1048576" | bc -l)" "$wall" "$loss"
done
