# shellcheck shell=bash
# Shared helpers for the test/infra scripts. Sourced, never run.
SMOLSTAGE_INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=test/infra/env.sh
source "$SMOLSTAGE_INFRA_DIR/env.sh" || exit 1

# shellcheck source=test/infra/versions.env
source "$SMOLSTAGE_INFRA_DIR/versions.env"

# One-line error naming the problem and the fix, then exit.
die() {
  echo "smolstage infra: $*" >&2
  exit 1
}

log() {
  echo "smolstage infra: $*" >&2
}

require_command() {
  local cmd=$1 fix=$2
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found; $fix"
}

# Short content hash of files (and extra strings), used to key cache folders by their pins.
pins_hash() {
  local f
  {
    for f in "$@"; do
      if [ -f "$f" ]; then cat "$f"; else printf '%s\n' "$f"; fi
    done
  } | sha256sum | cut -c1-12
}

# A free TCP port on 127.0.0.1 (asks the kernel for one; a tiny race with other binders is
# acceptable because every server start below fails loudly if the port was taken meanwhile).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Run a build step with a lock so two shells (or engineers) never build the same cache twice.
with_lock() {
  local name=$1
  shift
  mkdir -p "$SMOLSTAGE_CACHE/locks"
  flock "$SMOLSTAGE_CACHE/locks/$name.lock" "$@"
}

# Installs the npm dependencies with `npm ci` when node_modules is missing or was installed from
# another package-lock.json, so a fresh clone's first `npm run demo` or `npm test` works.
ensure_npm_deps() {
  local root lock_hash
  root="$(cd "$SMOLSTAGE_INFRA_DIR/../.." && pwd)"
  lock_hash=$(sha256sum "$root/package-lock.json" | cut -c1-16)
  [ "$(cat "$root/node_modules/.smolstage-lock" 2>/dev/null)" = "$lock_hash" ] && return 0
  log "installing npm dependencies (npm ci)"
  (cd "$root" && npm ci --no-audit --no-fund) || die "npm ci failed; check access to the npm registry"
  echo "$lock_hash" >"$root/node_modules/.smolstage-lock"
}
