#!/usr/bin/env bash
# Print the path of a CPython interpreter of version $1 (3.12, 3.13): on PATH, else one
# pyenv installed. Debian bookworm packages 3.11 only and uv's downloads need GitHub, which
# this CI cannot reach, so these are what a fresh machine here can run; none: print nothing.
set -uo pipefail
v="$1"
# (a pyenv shim is on PATH whether or not that version is selected: ask it to run)
if "python$v" -c '' >/dev/null 2>&1; then command -v "python$v"; exit 0; fi
root="${PYENV_ROOT:-$HOME/.pyenv}"
for p in $(ls -d "$root"/versions/"$v".* 2>/dev/null | sort -V -r); do
  if [ -x "$p/bin/python$v" ]; then echo "$p/bin/python$v"; exit 0; fi
done
