#!/usr/bin/env bash
# Builds the CPU quickstart's data from nothing but a seed: generated corpora (prose, code,
# arithmetic), a 512-entry byte-level BPE trained on them (with its ChatML tokenizer_config.json),
# token shards for each corpus, the held-out arithmetic task, and for
# examples/quickstart-instruct.yaml the arithmetic chat conversations and preference pairs rendered
# with the chat template. The same bytes `smolstage run` generates on first use. Takes under a
# minute on two cores; a few MB on disk.
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
# Post-training data: one padded example per conversation (pair) of at most 128 + 1 tokens.
smolstage data prepare --format chat --seq-len 128 --validation-fraction 0.05 \
  --tokenizer "$out/tokenizer.json" --out "$out/datasets/chat" "$out/chat/chat.jsonl"
smolstage data prepare --format preference --seq-len 128 --validation-fraction 0.05 \
  --tokenizer "$out/tokenizer.json" --out "$out/datasets/preference" "$out/chat/preference.jsonl"
echo "quickstart data ready in $out: tokenizer.json + tokenizer_config.json, datasets/{prose,code,math,chat,preference}, evals/arithmetic.jsonl"
