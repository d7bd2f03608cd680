#!/usr/bin/env bash
# Data-parallel step time on the cpu backend (Gloo over loopback): the same global batch on 1, 2
# and 4 ranks (one process each, started here), step time split into compute and communication,
# and the share of the gradient all-reduce hidden behind the backward. Prints a table and writes
# JSON lines. Sizes through the environment:
#   DP_PRESET (small)  DP_WORLDS (1,2,4)  DP_GLOBAL_BATCH (8 rows)  DP_MICRO (micro-batch per rank; 0 = whole local batch)
#   DP_SEQ (128)  DP_STEPS (5)  DP_WARMUP (1)  DP_THREADS (threads per rank; default cores / ranks, at least 1)
#   DP_BUCKET_MB (2)  DP_OUT (build/bench-dp.json)
# All ranks share this machine's cores and memory bandwidth, so compute per rank does not shrink
# as on separate machines; the communication figures are loopback TCP, not a real network. With
# tied embeddings the embedding's gradient (the largest tensor) is complete only at the very end
# of the backward, so its bucket can never be hidden: "hidden" is bounded by the layers' share.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
npm run build --silent
bin=build/smolstage_bench_dp
[ -x "$bin" ] || { echo "bench-dp: $bin was not built (is Gloo installed? Debian: apt-get install libgloo-dev)" >&2; exit 1; }
preset=${DP_PRESET:-small}
global=${DP_GLOBAL_BATCH:-8}
seq=${DP_SEQ:-128}
out=${DP_OUT:-build/bench-dp.json}
cores=$(nproc)
: >"$out"
IFS=, read -r -a worlds <<<"${DP_WORLDS:-1,2,4}"
for world in "${worlds[@]}"; do
  threads=${DP_THREADS:-$((cores / world > 0 ? cores / world : 1))}
  port=$((29600 + RANDOM % 2000))
  pids=()
  tmp=$(mktemp -d)
  for ((rank = 0; rank < world; rank++)); do
    "$bin" --rank "$rank" --world "$world" --port "$port" --preset "$preset" --global-batch "$global" \
      --micro "${DP_MICRO:-0}" --seq "$seq" --steps "${DP_STEPS:-5}" --warmup "${DP_WARMUP:-1}" \
      --threads "$threads" --bucket-mb "${DP_BUCKET_MB:-2}" >"$tmp/$rank.json" 2>"$tmp/$rank.err" &
    pids+=($!)
  done
  failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  if [ "$failed" = 1 ]; then
    cat "$tmp"/*.err >&2
    rm -rf "$tmp"
    echo "bench-dp: world $world failed" >&2
    exit 1
  fi
  cat "$tmp/0.json" >>"$out"
  rm -rf "$tmp"
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const r0 = rows[0];
console.log(`data-parallel cpu (Gloo, loopback): ${r0.preset}, global batch ${r0.globalBatch} × seq ${r0.seq}, ` +
  `gradients ${r0.gradMB || rows[rows.length - 1].gradMB} MB, buckets ${r0.bucketMB} MB, ${require("os").cpus().length} cores shared by all ranks`);
const head = ["ranks", "threads/rank", "step ms", "compute ms", "comm wait ms", "all-reduce ms", "hidden", "tok/s"];
const table = rows.map((r) => [r.world, r.threadsPerRank, r.stepMs.toFixed(1), r.computeMs.toFixed(1), r.commWaitMs.toFixed(1),
  r.commBusyMs.toFixed(1), r.world > 1 ? `${(100 * r.hiddenShare).toFixed(0)}%` : "-", r.tokPerSec.toFixed(0)].map(String));
const width = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
const line = (cells) => cells.map((c, i) => c.padStart(width[i])).join("  ");
console.log(line(head));
for (const t of table) console.log(line(t));
console.log(`JSON: ${process.argv[1]}`);
' "$out"
