#!/usr/bin/env bash
# CPU training throughput and peak memory: the native trainer beside Hugging Face transformers
# on PyTorch CPU (same config, batch, thread count), in one run. Prints a table, writes JSON.
# Sizes are configurable through the environment:
#   BENCH_PRESETS (tiny,tiny-gqa,smollm2-135m)  BENCH_SEQS (256,1024)  BENCH_TOKENS (1024 per step)
#   BENCH_STEPS (3)  BENCH_WARMUP (1)  BENCH_THREADS (all cores)  BENCH_OUT (build/bench-cpu.json)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${SMOLSTAGE_PYTHON:-}" ]; then
  SMOLSTAGE_PYTHON=$(bash ../test/infra/python.sh)
fi
npm run build --silent
exec "$SMOLSTAGE_PYTHON" scripts/bench_compare.py --bench-bin build/smolstage_bench \
  --presets "${BENCH_PRESETS:-tiny,tiny-gqa,smollm2-135m}" --seqs "${BENCH_SEQS:-256,1024}" \
  --tokens "${BENCH_TOKENS:-1024}" --steps "${BENCH_STEPS:-3}" --warmup "${BENCH_WARMUP:-1}" \
  --threads "${BENCH_THREADS:-$(nproc)}" --torch-devices cpu --out "${BENCH_OUT:-build/bench-cpu.json}"
