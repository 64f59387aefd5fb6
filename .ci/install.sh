#!/usr/bin/env bash
# Install devloop's system and Python dependencies (idempotent).
#   system: Docker Engine (docker.io), the registry (docker-registry) and a static
#   busybox (busybox-static, the base of every sample and test image), chromium (the
#   dashboard's browser tests) and tmux (the terminal view's test) from Debian.
#   python: a venv in .venv with devloop installed editable with its test/dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v make >/dev/null 2>&1 || need+=(make)
# the dashboard's browser tests (tests/ui) drive Debian's chromium with Playwright
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v tmux >/dev/null 2>&1 || need+=(tmux)  # the live view's test drives a real terminal
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing from Debian: ${need[*]}"
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[dev]'
echo "devloop $(.venv/bin/devloop --version | awk '{print $NF}') installed in .venv"
