#!/usr/bin/env bash
# Ensures the pinned Python venv (python-requirements.txt) exists and prints its python.
# The venv lives in $SMOLSTAGE_CACHE/venv-<hash of the pins and the base python's version>, so
# changing a pin builds a fresh venv and an unchanged one is reused without touching the network.
# Usage: python.sh [--nvcc]   (--nvcc prints the nvcc inside the venv instead)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

base_python=${SMOLSTAGE_BASE_PYTHON:-python3}
require_command "$base_python" "install Python 3.10+ with venv support (Debian: apt-get install python3 python3-venv) or set SMOLSTAGE_BASE_PYTHON"
base_version=$("$base_python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
requirements="$SMOLSTAGE_INFRA_DIR/python-requirements.txt"
venv="$SMOLSTAGE_CACHE/venv-$(pins_hash "$requirements" "$base_version")"

build_venv() {
  [ -f "$venv/.complete" ] && return 0
  "$base_python" -c 'import venv, ensurepip' 2>/dev/null ||
    die "python venv/ensurepip missing for $base_python; install it (Debian: apt-get install python3-venv)"
  log "creating the Python venv $venv (torch, transformers, moto, nvcc; a few GB, first time only)"
  rm -rf "$venv"
  "$base_python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip ||
    die "pip could not upgrade itself in $venv; check access to PyPI"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" ||
    die "pip install -r $requirements failed (see above); check access to PyPI"
  touch "$venv/.complete"
}

with_lock venv bash -c "$(declare -f build_venv die log); venv='$venv' base_python='$base_python' requirements='$requirements'; build_venv"

if [ "${1:-}" = "--nvcc" ]; then
  shopt -s nullglob
  nvccs=("$venv"/lib/python*/site-packages/nvidia/cu*/bin/nvcc)
  [ ${#nvccs[@]} -gt 0 ] || die "nvcc not found in $venv; delete that folder and rerun test/infra/python.sh"
  echo "${nvccs[0]}"
else
  echo "$venv/bin/python"
fi
