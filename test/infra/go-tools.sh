#!/usr/bin/env bash
# Builds (once) and prints the folder holding the pinned Go-built test tools:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3), helm,
#   kueue (sigs.k8s.io/kueue's controller manager; its CRDs are read from the same module's source).
# Each tool is built from the Go module proxy with the go.mod/go.sum under test/infra/go/<name>,
# into $SMOLSTAGE_CACHE/<name>-<version>-<hash of go.mod+go.sum>/; a second run builds nothing.
# Usage: go-tools.sh [kube|etcd|helm|kueue ...]   (default: all)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# go build uses at most 2 package jobs: the machine has 2 cores shared with other work. The
# builds run with -mod=readonly, so a go.sum that lacks an entry fails instead of re-resolving.
go_build_flags=(-p 2 -trimpath)

# Prints the cache folder for one tool module.
tool_dir() {
  local name=$1 version=$2
  local mod="$SMOLSTAGE_INFRA_DIR/go/$name"
  echo "$SMOLSTAGE_CACHE/$name-$version-$(pins_hash "$mod/go.mod" "$mod/go.sum")"
}

# build_tool NAME VERSION LDFLAGS PKG:BIN...
build_tool() {
  local name=$1 version=$2 ldflags=$3
  shift 3
  local dir mod spec pkg bin missing=()
  dir=$(tool_dir "$name" "$version")
  mod="$SMOLSTAGE_INFRA_DIR/go/$name"
  for spec in "$@"; do
    [ -x "$dir/bin/${spec#*:}" ] || missing+=("$spec")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  require_command go "install Go >= 1.26 (https://go.dev/doc/install; Debian 12's golang package is too old) and put it on PATH"
  mkdir -p "$dir/bin.tmp"
  for spec in "${missing[@]}"; do
    pkg=${spec%%:*}
    bin=${spec#*:}
    log "building $bin $version from the Go module proxy (slow the first time; cached in $dir)"
    (cd "$mod" && CGO_ENABLED=0 GOFLAGS=-mod=readonly nice go build "${go_build_flags[@]}" -ldflags "$ldflags" -o "$dir/bin.tmp/$bin" "$pkg") ||
      die "go build of $pkg failed (see the output above); check network access to the Go module proxy"
  done
  mkdir -p "$dir/bin"
  for spec in "${missing[@]}"; do
    mv "$dir/bin.tmp/${spec#*:}" "$dir/bin/${spec#*:}"
  done
  rmdir "$dir/bin.tmp" 2>/dev/null || true
}

kube_ldflags() {
  local v=$SMOLSTAGE_KUBE_VERSION minor
  minor=${v#v1.}
  minor=${minor%%.*}
  local pkg flags=""
  # The same variables the kubernetes release build stamps (hack/lib/version.sh), so that
  # `kubectl version` and the apiserver's /version report the pinned release.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "-s -w$flags"
}

# The pinned Kueue module's source folder in the Go module cache (downloaded if missing, checked
# against go.sum): servers.sh applies Kueue's CRDs and webhook configurations from config/ there.
kueue_source() {
  (cd "$SMOLSTAGE_INFRA_DIR/go/kueue" && GOFLAGS=-mod=readonly go mod download -json "sigs.k8s.io/kueue@$SMOLSTAGE_KUEUE_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
}

build_one() {
  case $1 in
  kube)
    build_tool kube "$SMOLSTAGE_KUBE_VERSION" "$(kube_ldflags)" \
      k8s.io/kubernetes/cmd/kube-apiserver:kube-apiserver k8s.io/kubernetes/cmd/kubectl:kubectl \
      k8s.io/kubernetes/cmd/kube-controller-manager:kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler:kube-scheduler
    ;;
  etcd)
    build_tool etcd "$SMOLSTAGE_ETCD_VERSION" "-s -w" go.etcd.io/etcd/server/v3:etcd
    ;;
  helm)
    build_tool helm "$SMOLSTAGE_HELM_VERSION" \
      "-s -w -X helm.sh/helm/v3/internal/version.version=$SMOLSTAGE_HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
      helm.sh/helm/v3/cmd/helm:helm
    ;;
  kueue)
    build_tool kueue "$SMOLSTAGE_KUEUE_VERSION" \
      "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$SMOLSTAGE_KUEUE_VERSION -X sigs.k8s.io/kueue/pkg/version.BuildDate=1970-01-01T00:00:00Z" \
      sigs.k8s.io/kueue/cmd/kueue:kueue
    ;;
  *) die "unknown tool '$1' (expected kube, etcd, helm or kueue)" ;;
  esac
}

# Prints NAME=PATH lines for the binaries of the requested tools.
main() {
  local tools=("$@") t
  [ ${#tools[@]} -eq 0 ] && tools=(etcd kube helm kueue)
  for t in "${tools[@]}"; do
    with_lock "go-$t" bash -c "source '$SMOLSTAGE_INFRA_DIR/go-tools.sh' --functions-only; build_one $t"
  done
  for t in "${tools[@]}"; do
    case $t in
    kube) echo "KUBE_APISERVER=$(tool_dir kube "$SMOLSTAGE_KUBE_VERSION")/bin/kube-apiserver"
      echo "KUBE_CONTROLLER_MANAGER=$(tool_dir kube "$SMOLSTAGE_KUBE_VERSION")/bin/kube-controller-manager"
      echo "KUBE_SCHEDULER=$(tool_dir kube "$SMOLSTAGE_KUBE_VERSION")/bin/kube-scheduler"
      echo "KUBECTL=$(tool_dir kube "$SMOLSTAGE_KUBE_VERSION")/bin/kubectl" ;;
    etcd) echo "ETCD=$(tool_dir etcd "$SMOLSTAGE_ETCD_VERSION")/bin/etcd" ;;
    helm) echo "HELM=$(tool_dir helm "$SMOLSTAGE_HELM_VERSION")/bin/helm" ;;
    kueue) echo "KUEUE=$(tool_dir kueue "$SMOLSTAGE_KUEUE_VERSION")/bin/kueue"
      echo "KUEUE_SOURCE=$(kueue_source)" ;;
    esac
  done
}

if [ "${1:-}" != "--functions-only" ]; then
  main "$@"
fi
