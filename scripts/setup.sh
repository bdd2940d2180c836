#!/usr/bin/env bash
# Idempotent set-up for every make target: Debian packages, the Python venv, checkov's own
# venv, the CDK CLI.
# Fresh Debian 12 with python3, node and npm is enough; a second run takes about a second.
#
# usage: scripts/setup.sh [--system-only]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the test suite runs for real. shellcheck lints component and agent
# scripts; the rest is the QEMU drill (see docs/drill.md).
DEBIAN_PACKAGES=(
  shellcheck
  qemu-system-x86 qemu-utils e2fsprogs debootstrap busybox-static
  kexec-tools makedumpfile cpio zstd
  gcc make  # the drill builds its hung-CPU test module against the guest kernel headers
)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; return 1; fi
}

missing_debian_packages() {
  local pkg
  for pkg in "${DEBIAN_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || echo "$pkg"
  done
}

install_debian_packages() {
  local missing
  missing=$(missing_debian_packages "$@")
  [ -z "$missing" ] && return 0
  echo "setup: installing Debian packages: $(echo "$missing" | tr '\n' ' ')"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  # shellcheck disable=SC2086  # word splitting of the package list is intended
  as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

python_can_make_venvs() {
  local probe
  probe=$(mktemp -d)
  if python3 -m venv "$probe/v" >/dev/null 2>&1; then rm -rf "$probe"; return 0; fi
  rm -rf "$probe"; return 1
}

setup_python() {
  local stamp=.venv/.crashcart-installed
  if [ ! -x .venv/bin/python ]; then
    python_can_make_venvs || install_debian_packages python3-venv
    python3 -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing Python packages into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
    touch "$stamp"
  fi
}

# checkov lives in its own venv: its pins (boto3 among them) would clash with the CDK venv's.
# Every package is pinned in scripts/checkov-requirements.txt; the tests run it offline.
setup_checkov() {
  local stamp=.venv-checkov/.crashcart-installed
  if [ ! -x .venv-checkov/bin/python ]; then
    python_can_make_venvs || install_debian_packages python3-venv
    python3 -m venv .venv-checkov
  fi
  if [ ! -f "$stamp" ] || [ scripts/checkov-requirements.txt -nt "$stamp" ]; then
    echo "setup: installing checkov into .venv-checkov"
    .venv-checkov/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv-checkov/bin/python -m pip install -q --disable-pip-version-check \
      -r scripts/checkov-requirements.txt
    touch "$stamp"
  fi
}

setup_node() {
  local stamp=node_modules/.crashcart-installed
  if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
    echo "setup: installing the CDK CLI (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    touch "$stamp"
  fi
}

install_debian_packages
[ "${1:-}" = "--system-only" ] && exit 0
setup_python
setup_checkov
setup_node
