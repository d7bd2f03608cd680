#!/usr/bin/env bash
# The one test entry point (npm scripts call it). Usage: bash test/run.sh TIER
#   lint         biome (format + lint) over the repo, then tsc type checks of every TypeScript
#                project (tsx runs tests without type checking, so this is where types are checked)
#   unit         node:test over operator/src/**/*.test.ts and test/unit/**/*.test.ts, then the
#                trainer-native C++ build and ctest (once trainer-native/CMakeLists.txt exists), then
#                a compile-and-link check of the CUDA backend with nvcc from the venv (no GPU to run it)
#   integration  build/start the real servers, run test/smoke/*.test.ts and
#                operator/test/integration/*.test.ts against them, stop the servers
#   parity       trainer-native/scripts/parity.sh with SMOLSTAGE_PYTHON (HF transformers reference)
#   image        test/image/build-and-run.sh: the Dockerfile built with buildah, --help and the CPU
#                quickstart run in the image (needs root and buildah + mmdebstrap; where either is
#                missing, `all` reports the tier as not run, never as passed)
#   all          lint, unit, integration, parity, image (what `npm test` runs), then a summary
#   bench-cpu, bench-gpu, bench-dp, demo   the benchmark scripts and the CPU quickstart (not part of `all`)
#   servers      start the servers, print their env exports, keep them up until Ctrl-C
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
# shellcheck source=test/infra/lib.sh
source test/infra/lib.sh || exit 1
shopt -s globstar nullglob

node_test() {
  node --import tsx --test --test-reporter=spec "$@"
}

tier_lint() {
  local status=0
  log "lint: biome check; tsc type checks of trainer-native (emits its dist/ types), operator with its tests and benches, test/"
  npx biome check . || status=1
  # Emits trainer-native/dist/*.d.ts too, which the operator's check resolves the binding's types from.
  npx tsc -p trainer-native/tsconfig.json || status=1
  npx tsc -p operator/tsconfig.check.json || status=1
  npx tsc -p test/tsconfig.json || status=1
  return $status
}

# The C++ and CUDA builds go through ccache when it is installed (.ci/run installs it), cached in
# $SMOLSTAGE_CACHE/ccache: a fresh clone recompiles only what changed. ccache hashes the compiler,
# its flags and the preprocessed source itself; CCACHE_BASEDIR makes the clone's absolute paths
# relative, so one clone hits what another compiled.
use_compiler_cache() {
  command -v ccache >/dev/null || return 0
  export CCACHE_DIR=$SMOLSTAGE_CACHE/ccache CCACHE_BASEDIR=$ROOT CCACHE_MAXSIZE=2G
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_CUDA_COMPILER_LAUNCHER=ccache
}

tier_unit() {
  local files=(operator/src/**/*.test.ts test/unit/**/*.test.ts) status=0
  use_compiler_cache
  [ ${#files[@]} -gt 0 ] || die "no unit test files found (operator/src/**/*.test.ts, test/unit/**/*.test.ts)"
  # The native trainer first: some unit tests (smolstage generate on a tiny model) use the addon.
  if [ -f trainer-native/CMakeLists.txt ]; then
    log "unit: building trainer-native (npm run build -w trainer-native)"
    require_command cmake "install CMake (Debian: apt-get install cmake)"
    if ! npm run build -w trainer-native; then
      echo "smolstage test: the trainer-native build failed (npm run build -w trainer-native)" >&2
      return 1
    fi
    if [ ! -d trainer-native/build ]; then
      echo "smolstage test: npm run build -w trainer-native produced no trainer-native/build, so ctest cannot run" >&2
      return 1
    fi
  fi
  log "unit: ${#files[@]} TypeScript test files"
  node_test "${files[@]}" || status=1
  if [ -f trainer-native/CMakeLists.txt ]; then
    log "unit: ctest (trainer-native)"
    ctest --test-dir trainer-native/build --output-on-failure --no-tests=error -j 2 || status=1
    # No GPU here, so the CUDA backend and its tests are compiled and linked (nvcc from PyPI) but
    # not run; a lent GPU runs them through trainer-native/scripts/device-check.sh.
    log "unit: compile-checking the CUDA backend into trainer-native/build-cuda (built, not run: no GPU)"
    local nvcc
    nvcc=$(bash test/infra/python.sh --nvcc) || return 1
    # SMOLSTAGE_NCCL=ON: the NCCL communicator (pip's nvidia-nccl-cu13 beside nvcc) is compiled and linked too.
    if ! { SMOLSTAGE_NVCC=$nvcc cmake -S trainer-native -B trainer-native/build-cuda -DSMOLSTAGE_CUDA=ON \
      -DSMOLSTAGE_NCCL=ON -DCMAKE_BUILD_TYPE=Release >trainer-native/build-cuda.log 2>&1 &&
      cmake --build trainer-native/build-cuda -j 2 --target smolstage_cuda_tests >>trainer-native/build-cuda.log 2>&1; }; then
      tail -30 trainer-native/build-cuda.log >&2
      echo "smolstage test: the CUDA backend or its NCCL communicator does not compile (log: trainer-native/build-cuda.log)" >&2
      status=1
    fi
  else
    log "unit: trainer-native/CMakeLists.txt does not exist yet, so there are no C++ tests to run"
  fi
  return $status
}

# Starts the servers into a fresh state dir and exports everything the tests read. The caller
# must have installed the stop_servers trap first.
start_servers() {
  servers_state=$(mktemp -d "${TMPDIR:-/tmp}/smolstage-servers.XXXXXX")
  # A watchdog stops the servers even if this shell is killed with SIGKILL.
  setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done; bash "$2" stop "$3"; rm -rf "$3"' \
    _ $$ "$ROOT/test/infra/servers.sh" "$servers_state" >/dev/null 2>&1 </dev/null &
  bash test/infra/servers.sh start "$servers_state" || return 1
  # shellcheck disable=SC1091
  source "$servers_state/env"
  export SMOLSTAGE_PYTHON SMOLSTAGE_HELM SMOLSTAGE_NVCC
  SMOLSTAGE_PYTHON=$(bash test/infra/python.sh) || return 1
  SMOLSTAGE_NVCC=$(bash test/infra/python.sh --nvcc) || return 1
  SMOLSTAGE_HELM=$(bash test/infra/go-tools.sh helm | sed -n 's/^HELM=//p') || return 1
  [ -n "$SMOLSTAGE_HELM" ] || return 1
}

stop_servers() {
  if [ -n "${servers_state:-}" ]; then
    bash test/infra/servers.sh stop "$servers_state"
    rm -rf "$servers_state"
    servers_state=
  fi
}

tier_integration() {
  local files=(test/smoke/*.test.ts operator/test/integration/*.test.ts) status=0
  [ ${#files[@]} -gt 0 ] || die "no integration test files found (test/smoke/*.test.ts, operator/test/integration/*.test.ts)"
  trap stop_servers EXIT
  trap 'stop_servers; exit 130' INT
  trap 'stop_servers; exit 143' TERM HUP
  start_servers || { stop_servers; return 1; }
  log "integration: ${#files[@]} test files against kube-apiserver $SMOLSTAGE_KUBE_VERSION, S3 at $SMOLSTAGE_TEST_S3_ENDPOINT"
  node_test "${files[@]}" || status=1
  stop_servers
  trap - EXIT INT TERM HUP
  return $status
}

tier_servers() {
  local sleeper=
  trap 'stop_servers; [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  start_servers || exit 1
  echo "# Servers are up. Paste these exports into another shell, or: source $servers_state/exports"
  {
    cat "$servers_state/env"
    echo "export SMOLSTAGE_PYTHON=$SMOLSTAGE_PYTHON"
    echo "export SMOLSTAGE_HELM=$SMOLSTAGE_HELM"
    echo "export SMOLSTAGE_NVCC=$SMOLSTAGE_NVCC"
  } | tee "$servers_state/exports"
  echo "# Press Ctrl-C to stop them."
  # wait (unlike a foreground sleep) returns as soon as a signal arrives, so the trap runs at once.
  sleep infinity &
  sleeper=$!
  wait "$sleeper"
}

# run_script TIER PATH: runs a script another part owns, or fails saying it does not exist yet.
run_script() {
  local tier=$1 script=$2
  shift 2
  if [ ! -f "$script" ]; then
    echo "smolstage test: '$tier' is not built yet: $script does not exist" >&2
    return 1
  fi
  bash "$script" "$@"
}

tier_parity() {
  export SMOLSTAGE_PYTHON
  SMOLSTAGE_PYTHON=$(bash test/infra/python.sh) || return 1
  run_script parity trainer-native/scripts/parity.sh
}

tier_demo() {
  # The README's first command: the CPU quickstart on embedded defaults (examples/quickstart.yaml),
  # data generated on first use, work directory .smolstage/quickstart (rerun resumes).
  if [ ! -f trainer-native/build/Release/smolstage_trainer.node ]; then
    log "demo: building the native trainer (npm run build -w trainer-native)"
    npm run build -w trainer-native || return 1
  fi
  node operator/bin/smolstage.js run "$@"
}

tier_image() {
  bash test/image/build-and-run.sh all
}

# Why the image tier cannot run on this machine (empty when it can).
image_tier_blocker() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "needs root (buildah's chroot builds and mmdebstrap)"
  elif ! command -v buildah >/dev/null || ! command -v mmdebstrap >/dev/null; then
    echo "needs the Debian packages buildah and mmdebstrap (.ci/run installs them)"
  fi
}

tier_all() {
  local tier results=() passed=0 failed=0 not_run=0 start blocker
  for tier in lint unit integration parity image; do
    if [ "$tier" = image ] && blocker=$(image_tier_blocker) && [ -n "$blocker" ]; then
      results+=("NOT RUN  image: $blocker")
      not_run=$((not_run + 1))
      continue
    fi
    start=$SECONDS
    echo "===== $tier ====="
    if (tier_"$tier"); then
      results+=("PASS  $tier ($((SECONDS - start))s)")
      passed=$((passed + 1))
    else
      results+=("FAIL  $tier ($((SECONDS - start))s)")
      failed=$((failed + 1))
    fi
  done
  echo "===== summary ====="
  printf '%s\n' "${results[@]}"
  echo "tiers: $passed passed, $failed failed$([ "$not_run" -eq 0 ] || echo ", $not_run not run")"
  [ "$failed" -eq 0 ]
}

case ${1:-} in
lint | unit | integration | parity | all | demo | bench-cpu | bench-gpu | bench-dp) ensure_npm_deps ;;
esac

case ${1:-} in
lint | unit | integration | parity | image | all | servers) tier_"$1" ;;
demo) shift; tier_demo "$@" ;;
bench-cpu) run_script bench-cpu trainer-native/scripts/bench-cpu.sh ;;
bench-gpu) run_script bench-gpu trainer-native/scripts/bench-gpu.sh ;;
bench-dp) run_script bench-dp trainer-native/scripts/bench-dp.sh ;;
*)
  echo "usage: bash test/run.sh lint|unit|integration|parity|image|all|bench-cpu|bench-gpu|bench-dp|demo|servers" >&2
  exit 2
  ;;
esac
