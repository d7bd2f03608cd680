#!/usr/bin/env bash
# GPU benchmark: our CUDA backend beside Hugging Face Llama on PyTorch CUDA (fp32, TF32 and bf16
# autocast) for the same configurations, one table with tokens/s, peak memory and MFU.
# Needs no Node: builds the core with plain CMake and the CUDA backend (nvcc on PATH, CUDACXX or
# SMOLSTAGE_NVCC) into build-gpu/, unless BENCH_BIN names an already built smolstage_bench.
#   BENCH_PRESETS (tiny,smollm2-135m)  BENCH_SEQS (1024)  BENCH_TOKENS per step (16384)
#   BENCH_STEPS (5)  BENCH_WARMUP (2)  BENCH_TORCH (cuda:float32,cuda:tf32,cuda:bf16-autocast)
#   BENCH_PEAK_TFLOPS (989: H100/H200 dense bf16)  BENCH_OUT (build-gpu/bench-gpu.json)
#   SMOLSTAGE_CUDA_TF32=0 runs our GEMMs in full fp32 instead of TF32.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${SMOLSTAGE_PYTHON:-python3}
bench_bin=${BENCH_BIN:-}
if [ -z "$bench_bin" ]; then
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DSMOLSTAGE_CUDA=ON >/dev/null
  cmake --build build-gpu -j "${BUILD_JOBS:-$(nproc)}" --target smolstage_bench >/dev/null
  bench_bin=build-gpu/smolstage_bench
fi
out=${BENCH_OUT:-build-gpu/bench-gpu.json}
mkdir -p "$(dirname "$out")"
exec "$python" scripts/bench_compare.py --bench-bin "$bench_bin" --backend cuda \
  --presets "${BENCH_PRESETS:-tiny,smollm2-135m}" --seqs "${BENCH_SEQS:-1024}" \
  --tokens "${BENCH_TOKENS:-16384}" --steps "${BENCH_STEPS:-5}" --warmup "${BENCH_WARMUP:-2}" --threads 1 \
  --torch-devices "${BENCH_TORCH:-cuda:float32,cuda:tf32,cuda:bf16-autocast}" \
  --peak-tflops "${BENCH_PEAK_TFLOPS:-989}" --out "$out"
