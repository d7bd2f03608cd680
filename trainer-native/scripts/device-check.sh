#!/usr/bin/env bash
# For a GPU machine without Node: builds the core with plain CMake (with the CUDA backend when
# nvcc is found), runs the CUDA-vs-CPU tests, the NCCL communicator at world size 1 (NCCL from
# torch's pip dependency when not beside nvcc), benchmarks our CUDA backend beside PyTorch CUDA
# (bench-gpu.sh), then runs the C++ tests and benchmarks our CPU backend beside PyTorch CPU. A
# failing test does not stop the benchmarks; the exit status reports both.
# Needs cmake, a C++17 compiler, python3 with torch + transformers (SMOLSTAGE_PYTHON or python3),
# for the CUDA part nvcc (CUDACXX, PATH, SMOLSTAGE_NVCC or /usr/local/cuda/bin). Outputs (9
# files) go to $OUT when set (else build/device-check/). CPU bench sizes as in bench-cpu.sh (BENCH_PRESETS, BENCH_SEQS,
# BENCH_TOKENS, BENCH_STEPS, BENCH_WARMUP); GPU bench sizes GPU_BENCH_* (see below); extra CMake
# flags in DEVICE_CMAKE_ARGS (e.g. -DSMOLSTAGE_CUDA=OFF).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
out=${OUT:-build/device-check}
mkdir -p "$out"
python=${SMOLSTAGE_PYTHON:-python3}
jobs=${BUILD_JOBS:-16}
status=0
started=$(date +%s)
section() { echo "== $1 (t=$(($(date +%s) - started))s)"; }

if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null 2>&1; then
  # Last resort: nvcc from pip wheels (nvidia-cuda-nvcc) beside the python's torch.
  pip_nvidia=$("$python" -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null || true)
  for candidate in ${SMOLSTAGE_NVCC:-} /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc \
    ${pip_nvidia:+$pip_nvidia/cu13/bin/nvcc}; do
    if [ -x "$candidate" ]; then export CUDACXX=$candidate; break; fi
  done
fi
have_gpu=0
nvidia-smi -L >/dev/null 2>&1 && have_gpu=1
{
  section machine
  nproc
  lscpu 2>/dev/null | grep -E 'Model name|^CPU\(s\)|Thread' || true
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
  "${CUDACXX:-nvcc}" --version 2>/dev/null | tail -2 || echo "no nvcc"
  "$python" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__)'
} 2>&1 | tee "$out/machine.txt"

# NCCL for the communicator: torch's pip dependency nvidia-nccl-cu13, when nvcc is not from pip.
pip_nvidia=${pip_nvidia:-$("$python" -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null || true)}
nccl_args=()
[ -n "$pip_nvidia" ] && [ -f "$pip_nvidia/nccl/include/nccl.h" ] && nccl_args=(-DSMOLSTAGE_NCCL_ROOT="$pip_nvidia/nccl")

build=$(mktemp -d "${TMPDIR:-/tmp}/smolstage-device-build.XXXXXX")
section "build ($build, -j$jobs)"
# shellcheck disable=SC2086  # DEVICE_CMAKE_ARGS is a list of flags
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${nccl_args[@]}" ${DEVICE_CMAKE_ARGS:-} && cmake --build "$build" -j "$jobs"; } >"$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  echo "device-check: build failed (see $out/build.log)" >&2
  exit 1
fi
grep -E "smolstage GEMM|smolstage CUDA backend|smolstage NCCL|smolstage Gloo|NCCL not found" "$out/build.log" || true
cuda_built=0
[ -x "$build/smolstage_cuda_tests" ] && cuda_built=1

# Most informative first, so a run cut short by its time limit still returns the CUDA results.
section "CUDA tests (cuda backend against the cpu backend)"
if [ "$cuda_built" = 1 ] && [ "$have_gpu" = 1 ]; then
  timeout 300 "$build/smolstage_cuda_tests" >"$out/ctest.log" 2>&1 || status=1
elif [[ "${DEVICE_CMAKE_ARGS:-}" == *SMOLSTAGE_CUDA=OFF* ]]; then
  echo "CUDA tests not run (SMOLSTAGE_CUDA=OFF)" | tee "$out/ctest.log"
else
  echo "CUDA tests not run (CUDA backend built: $cuda_built, GPU present: $have_gpu)" | tee "$out/ctest.log"
  status=1
fi
grep -E -A1 "^FAIL " "$out/ctest.log" | head -60 || true
grep -E "[0-9]+ tests, [0-9]+ failed" "$out/ctest.log" || true

# The data-parallel code path on one GPU: NCCL at world size 1 (rendezvous, unique id, gradient
# buckets on the comm stream, host reductions) must train like the plain cuda trainer.
section "NCCL communicator, world size 1"
if [ "$cuda_built" = 1 ] && [ "$have_gpu" = 1 ] && grep -q "smolstage NCCL communicator" "$out/build.log"; then
  timeout 180 "$build/smolstage_cuda_tests" nccl_world_size_1 2>&1 | tee "$out/nccl.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  echo "NCCL check not run (CUDA backend built: $cuda_built, GPU present: $have_gpu, NCCL found: $(grep -c 'smolstage NCCL communicator' "$out/build.log"))" | tee "$out/nccl.log"
  [[ "${DEVICE_CMAKE_ARGS:-}" == *SMOLSTAGE_CUDA=OFF* ]] || status=1
fi

if [ "$cuda_built" = 1 ] && [ "$have_gpu" = 1 ]; then
  section "bench GPU (ours cuda, PyTorch cuda)"
  BENCH_BIN="$build/smolstage_bench" BENCH_OUT="$out/bench-gpu.json" BENCH_PRESETS="${GPU_BENCH_PRESETS:-tiny,smollm2-135m}" \
    BENCH_SEQS="${GPU_BENCH_SEQS:-1024}" BENCH_TOKENS="${GPU_BENCH_TOKENS:-16384}" BENCH_STEPS="${GPU_BENCH_STEPS:-3}" \
    BENCH_WARMUP="${GPU_BENCH_WARMUP:-1}" SMOLSTAGE_PYTHON="$python" \
    bash scripts/bench-gpu.sh 2>>"$out/bench.stderr" | tee "$out/bench-gpu.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

section "ctest (C++ tests of the core and the cpu backend)"
echo "---- ctest" >>"$out/ctest.log"
ctest --test-dir "$build" --output-on-failure -V -E smolstage_cuda_tests >>"$out/ctest.log" 2>&1 || status=1
grep -E -A1 "^[0-9]+: FAIL " "$out/ctest.log" | head -60 || true
grep -E "^[0-9]+: [0-9]+ tests, [0-9]+ failed" "$out/ctest.log" || true

# PyTorch CUDA numbers are in the GPU table above, so this one compares CPU with CPU.
section "bench CPU (ours cpu, PyTorch cpu)"
"$python" scripts/bench_compare.py --bench-bin "$build/smolstage_bench" \
  --presets "${BENCH_PRESETS:-tiny,tiny-gqa,smollm2-135m}" --seqs "${BENCH_SEQS:-256,1024}" \
  --tokens "${BENCH_TOKENS:-4096}" --steps "${BENCH_STEPS:-3}" --warmup "${BENCH_WARMUP:-1}" \
  --threads "$(nproc)" --torch-devices cpu --out "$out/bench.json" 2>>"$out/bench.stderr" | tee "$out/bench.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
section "done (status $status)"
rm -rf "$build"
exit $status
