#!/usr/bin/env bash
# Idempotent set-up for every make target: the Python venv, checkov's own venv, the CDK CLI
# and, for the targets that run the QEMU drill, its Debian packages. Fresh Debian 12 with
# python3, node and npm is enough; a second run takes about a second.
#
# usage: scripts/setup.sh [--drill] [--system-only]
#   (none)         the venv and the CDK CLI (make synth, make check, make lint): no root
#                  needed; shellcheck (the compliance tests lint every bash step with it) is
#                  installed when missing and root or password-less sudo is at hand
#   --drill        also the drill's Debian packages (make test, make drill, make bench):
#                  needs root or sudo; a fresh Debian 12 with python3, node and npm is enough
#   --system-only  the Debian packages only
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the QEMU drill needs (see docs/drill.md).
DRILL_PACKAGES=(
  shellcheck
  qemu-system-x86 qemu-utils e2fsprogs debootstrap busybox-static
  kexec-tools makedumpfile cpio zstd
  gcc make  # the drill builds its hung-CPU test module against the guest kernel headers
)
# Wanted by the everyday loop (make check): the compliance tests run shellcheck on every bash
# step. Installed when root is at hand; without it those tests skip, except under CI.
CHECK_PACKAGES=(shellcheck)
DEBIAN_PACKAGES=()

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; return 1; fi
}

can_be_root() {
  [ "$(id -u)" -eq 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }
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

drill=false system_only=false
for arg in "$@"; do
  case "$arg" in
    --drill) drill=true ;;
    --system-only) system_only=true ;;
    *) echo "usage: scripts/setup.sh [--drill] [--system-only]" >&2; exit 2 ;;
  esac
done
if $drill || $system_only; then
  DEBIAN_PACKAGES=("${DRILL_PACKAGES[@]}")
  install_debian_packages
elif [ -n "$(missing_debian_packages "${CHECK_PACKAGES[@]}")" ]; then
  if can_be_root; then
    # Best effort: synth and lint do not need it, so a machine that cannot install packages
    # (no registry) still synthesizes; the tests that need it say so.
    DEBIAN_PACKAGES=("${CHECK_PACKAGES[@]}")
    install_debian_packages || echo "setup: note: could not install shellcheck: the" \
      "compliance tests that run it will skip (fail under CI)" >&2
  else
    echo "setup: note: shellcheck is not installed and there is no root: the compliance" \
      "tests that run it will skip (apt-get install shellcheck to run them)" >&2
  fi
fi
$system_only && exit 0
setup_python
setup_checkov
setup_node
