#!/usr/bin/env bash
# Builds the CPU quickstart's data from nothing but a seed: generated corpora (prose, code,
# arithmetic), a 512-entry byte-level BPE trained on them, token shards for each corpus and the
# held-out arithmetic task. Takes about a minute on two cores; a few MB on disk.
#   bash examples/data/prepare-quickstart.sh [OUT_DIR]        (default: .smolstage/quickstart)
# To use it from a cluster, copy OUT_DIR to s3://smolstage/quickstart/ (see examples/quickstart.yaml)
# or run the prepare lines with --out s3://smolstage/quickstart/datasets/<name>.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-.smolstage/quickstart}"
# shellcheck source=../../test/infra/env.sh
source "$root/test/infra/env.sh"
smolstage() { node "$root/operator/bin/smolstage.js" "$@"; }

smolstage data quickstart --out "$out" --documents 3000 --seed 1
smolstage data train-tokenizer --vocab-size 512 --out "$out/tokenizer.json" "$out/corpora"
for corpus in prose code math; do
  smolstage data prepare --tokenizer "$out/tokenizer.json" --out "$out/datasets/$corpus" \
    --validation-fraction 0.02 "$out/corpora/$corpus.jsonl"
done
echo "quickstart data ready in $out: tokenizer.json, datasets/{prose,code,math}, evals/arithmetic.jsonl"
