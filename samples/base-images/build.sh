#!/usr/bin/env bash
# Build the base images the samples start FROM, from Debian bookworm packages,
# because there is no Docker Hub here:
#   devloop/debian:bookworm  debootstrap --variant=minbase, then `docker import`
#   devloop/python:3         + python3, python3-venv (Debian's 3.11)
#   devloop/node:18          + nodejs (Debian's 18.x)
# Each image is skipped when it exists already (FORCE=1 rebuilds them all), so
# calling this on every `make dev` costs three `docker image inspect`s.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=${DEBIAN_SUITE:-bookworm}
force=${FORCE:-0}
label=devloop.dev/base-image=true

have() { [ "$force" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

# The mirror apt on this machine uses (deb822 or one-line sources), else deb.debian.org.
mirror() {
  local m
  m=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | grep -oE 'https?://[^ ]*/debian/?' | grep -v security | head -1 || true)
  echo "${DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

rootfs=""
cleanup() { if [ -n "$rootfs" ]; then sudo_ rm -rf "$rootfs" "$rootfs.log"; fi; }
trap cleanup EXIT

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

build_debian() {
  if ! command -v debootstrap >/dev/null; then
    echo "installing debootstrap (Debian package)"
    sudo_ apt-get install -y -qq debootstrap >/dev/null
  fi
  local start
  start=$(date +%s)
  rootfs=$(mktemp -d /tmp/devloop-rootfs.XXXXXX)
  echo "debootstrap --variant=minbase $suite from $(mirror) (about a minute)"
  sudo_ debootstrap --variant=minbase "$suite" "$rootfs" "$(mirror)" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log"; exit 1; }
  # what a container image does not need: the package cache, apt lists, docs, man pages
  sudo_ rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
         "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  sudo_ tar -C "$rootfs" --numeric-owner -c . | docker import \
    -c 'CMD ["/bin/bash"]' -c 'ENV LANG=C.UTF-8' -c "LABEL $label" \
    -m "debootstrap --variant=minbase $suite" - "devloop/debian:$suite" >/dev/null
  echo "built devloop/debian:$suite in $(( $(date +%s) - start ))s"
}

build_lang() {  # image, folder
  local start
  start=$(date +%s)
  docker build -q --label "$label" --build-arg "BASE_IMAGE=devloop/debian:$suite" -t "$1" "$here/$2" >/dev/null
  echo "built $1 in $(( $(date +%s) - start ))s"
}

have "devloop/debian:$suite" || build_debian
have devloop/python:3 || build_lang devloop/python:3 python
have devloop/node:18 || build_lang devloop/node:18 node
