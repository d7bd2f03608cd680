#!/usr/bin/env bash
# For a GPU machine without Node: builds the core with plain CMake, runs the C++ tests and the
# CPU benchmark on all cores beside PyTorch on CPU and on CUDA for the same configurations.
# Needs cmake, a C++17 compiler and a python3 with torch + transformers (SMOLSTAGE_PYTHON or
# python3). Outputs go to $OUT when set (else build-device/). Sizes as in bench-cpu.sh
# (BENCH_PRESETS, BENCH_SEQS, BENCH_TOKENS, BENCH_STEPS, BENCH_WARMUP).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-build-device}
mkdir -p "$out"
python=${SMOLSTAGE_PYTHON:-python3}
jobs=${BUILD_JOBS:-16}
status=0
{
  echo "== machine"
  nproc
  lscpu 2>/dev/null | grep -E 'Model name|^CPU\(s\)|Thread' || true
  ldconfig -p 2>/dev/null | grep -iE "blas|gomp" || echo "no BLAS in the loader cache (built-in GEMM)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$python" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__)'
} 2>&1 | tee "$out/machine.txt"

build=$(mktemp -d "${TMPDIR:-/tmp}/smolstage-device-build.XXXXXX")
echo "== build ($build, -j$jobs)"
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release && cmake --build "$build" -j "$jobs"; } >"$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  echo "device-check: build failed (see $out/build.log)" >&2
  exit 1
fi
grep -E "smolstage GEMM" "$out/build.log" || true

echo "== ctest"
ctest --test-dir "$build" --output-on-failure -V >"$out/ctest.log" 2>&1 || status=1
grep -E "^[0-9]+: (FAIL|ok|[0-9]+ tests)" "$out/ctest.log" | grep -vE ": ok " || true

echo "== bench (ours on CPU, PyTorch on CPU and CUDA)"
devices=cpu
"$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' && devices=cpu,cuda
"$python" scripts/bench_compare.py --bench-bin "$build/smolstage_bench" \
  --presets "${BENCH_PRESETS:-tiny,tiny-gqa,smollm2-135m}" --seqs "${BENCH_SEQS:-256,1024}" \
  --tokens "${BENCH_TOKENS:-4096}" --steps "${BENCH_STEPS:-3}" --warmup "${BENCH_WARMUP:-1}" \
  --threads "$(nproc)" --torch-devices "$devices" --out "$out/bench.json" 2>"$out/bench.stderr" | tee "$out/bench.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
rm -rf "$build"
exit $status
