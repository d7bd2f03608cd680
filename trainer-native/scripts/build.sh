#!/usr/bin/env bash
# npm run build: the C++ core, tests, bench and Node addon through cmake-js (into build/), then
# the TypeScript wrapper (into dist/). Node headers come from the local Node install, never
# from the network.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${npm_config_nodedir:-}" ] || [ ! -f "$npm_config_nodedir/include/node/node_api.h" ]; then
  node_root=$(dirname "$(dirname "$(command -v node)")")
  if [ ! -f "$node_root/include/node/node_api.h" ]; then
    echo "trainer-native build: Node headers not found in $node_root/include/node; source test/infra/env.sh (sets npm_config_nodedir) or set npm_config_nodedir to a Node install with include/node" >&2
    exit 1
  fi
  export npm_config_nodedir=$node_root
fi
command -v cmake >/dev/null || { echo "trainer-native build: cmake not found (Debian: apt-get install cmake)" >&2; exit 1; }
npx cmake-js build --out build --config Release --parallel "${SMOLSTAGE_BUILD_JOBS:-2}" --log-level warn
npx tsc -p tsconfig.json
