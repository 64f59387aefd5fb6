#!/usr/bin/env bash
# Start the Docker Engine and a registry on 127.0.0.1:5000 when none is running.
# Idempotent: safe to call from .ci/run, the Makefile and the quickstart.
set -euo pipefail

state=${DEVLOOP_STATE_DIR:-/tmp/devloop-ci}
mkdir -p "$state"

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd (log: $state/dockerd.log)"
  sudo_ sh -c "nohup dockerd --host=unix:///var/run/docker.sock >'$state/dockerd.log' 2>&1 &"
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start:"; tail -30 "$state/dockerd.log"; exit 1; }
fi

if ! curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1; then
  echo "starting docker-registry on 127.0.0.1:5000 (log: $state/registry.log)"
  cat >"$state/registry.yml" <<YAML
version: 0.1
storage:
  filesystem: {rootdirectory: $state/registry}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:5000
YAML
  nohup docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 &
  for _ in $(seq 1 60); do curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1 && break; sleep 0.25; done
  curl -fsS http://127.0.0.1:5000/v2/ >/dev/null || { echo "registry did not start:"; tail -30 "$state/registry.log"; exit 1; }
fi

# The busybox base image every sample and test builds FROM, made from Debian's
# busybox-static because there is no Docker Hub here.
if ! docker image inspect devloop/busybox:latest >/dev/null 2>&1; then
  bb=/bin/busybox
  if ! [ -x "$bb" ] || ldd "$bb" >/dev/null 2>&1; then
    echo "need a static busybox at /bin/busybox (Debian package busybox-static)"; exit 1
  fi
  tmp=$(mktemp -d)
  cp "$bb" "$tmp/busybox"
  cat >"$tmp/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /tmp /root /etc && echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd && echo 'root:x:0:' >/etc/group && chmod 1777 /tmp
CMD ["/bin/sh"]
DOCKERFILE
  docker build -q -t devloop/busybox:latest "$tmp" >/dev/null
  rm -rf "$tmp"
  echo "built devloop/busybox:latest from $(dpkg -S "$bb" 2>/dev/null | cut -d: -f1 || echo "$bb")"
fi

# The samples' Python and Node base images (devloop/python:3, devloop/node:18),
# from Debian packages; skipped when they exist (2.5 to 6 minutes the first time).
bash "$(dirname "$0")/../samples/base-images/build.sh"
