"""The one way to reach the Docker engine: a client that answered, or a clear RuntimeUnavailable."""

from __future__ import annotations

import os
import socket

import docker
import requests

from devloop.errors import RuntimeUnavailable

DEFAULT_HOST = "unix:///var/run/docker.sock"


# One timeout policy for every engine call: the first ping must answer quickly (a dead or
# black-holed engine is said at once); after it, a call may take as long as a push of a big layer.
PING_TIMEOUT = 10
CALL_TIMEOUT = 300


def engine_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def connect() -> docker.DockerClient:
    """A client for the engine at $DOCKER_HOST (or the default socket) that has answered a ping."""
    host = engine_host()
    client: docker.DockerClient | None = None
    try:
        if host.startswith("unix://"):
            _probe_unix(host.removeprefix("unix://"))
        client = docker.from_env(timeout=PING_TIMEOUT)
        client.ping()
        client.api.timeout = CALL_TIMEOUT
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
