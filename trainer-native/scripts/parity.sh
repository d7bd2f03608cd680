#!/usr/bin/env bash
# Parity of the native trainer with Hugging Face transformers on PyTorch CPU (fp32).
# Needs SMOLSTAGE_PYTHON: a python with torch + transformers + safetensors
# (bash test/infra/python.sh prints one). Builds the trainer first if needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${SMOLSTAGE_PYTHON:-}" ]; then
  echo "parity: SMOLSTAGE_PYTHON is not set; run through 'npm run test:parity' or export SMOLSTAGE_PYTHON=\$(bash test/infra/python.sh)" >&2
  exit 1
fi
npm run build --silent
node --import tsx --test --test-reporter=spec test/*.test.ts
