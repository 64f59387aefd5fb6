"""Connect to the Docker engine, or say clearly that it cannot be reached."""

from __future__ import annotations

import os
import socket

import docker
import requests

from devloop.errors import RuntimeUnavailable

DEFAULT_HOST = "unix:///var/run/docker.sock"


def connect(timeout: float = 120.0) -> docker.DockerClient:
    """A client for the engine at $DOCKER_HOST (or the default socket) that has answered a ping."""
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    client: docker.DockerClient | None = None
    try:
        if host.startswith("unix://"):
            _probe_unix(host.removeprefix("unix://"))
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except (OSError, docker.errors.DockerException, requests.RequestException) as exc:
        if client is not None:
            client.close()
        raise RuntimeUnavailable(
            f"cannot reach the Docker engine at {host}: {_reason(exc)}"
        ) from None
    return client


def _probe_unix(path: str) -> None:
    # the SDK leaks its socket when the first connect fails; fail here first, cleanly
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc)
    for needle in ("No such file or directory", "Connection refused", "Permission denied"):
        if needle in text:
            return needle.lower()
    return text
