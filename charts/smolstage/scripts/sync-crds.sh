#!/usr/bin/env bash
# Copies the generated CRDs (crds/*.yaml, rendered from operator/src/api/crd-schema.ts) into the
# chart's crds/ directory. Run after regenerating the CRDs; the chart test fails while they differ.
set -euo pipefail
chart="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source_dir="$chart/../../crds"
rm -f "$chart"/crds/*.yaml
cp "$source_dir"/*.yaml "$chart/crds/"
echo "copied $(ls "$source_dir"/*.yaml | wc -l) CRDs from crds/ into charts/smolstage/crds/"
