"""Without a readiness probe, a pod is ready once its app accepts connections on the TCP ports its
containers declare (as on Docker): a rollout ends when the container starts, often before the app
listens, and `ready` with its URL would come too early.

Asked through the API server's port-forward: the kubelet connects to the port as the stream opens,
and a connection the pod refuses comes back on the port's error channel.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Callable, Collection

from kubernetes.client.exceptions import ApiException

from devloop.errors import DeployError
from devloop.runtime.kubernetes.forward import open_port
from devloop.runtime.kubernetes.pods import is_ready
from devloop.runtime.kubernetes.rest import Obj, Rest

POLL = 0.5
ANSWER = 0.5  # how long a refused connection may take to come back on the error channel


def unprobed_ports(pod: Obj) -> list[tuple[str, int]]:
    """(container, port) for each TCP containerPort of a container without a readiness probe."""
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("readinessProbe"):
            continue
        for p in c.get("ports") or []:
            if (p.get("protocol") or "TCP") == "TCP" and p.get("containerPort"):
                out.append((str(c.get("name")), int(p["containerPort"])))
    return out


def refused(rest: Rest, namespace: str, pod: str, port: int) -> bool:
    """The pod refuses a connection to `port`. False when it accepts, or when no port-forward can
    be opened (a Role without pods/portforward, the pod gone): then the rollout has to do."""
    try:
        forward, sock = open_port(rest, namespace, pod, port)
    except (ApiException, OSError, ValueError):
        return False
    try:
        readable, _, _ = select.select([sock], [], [], ANSWER)
        if not readable:
            return False  # connected, and the app waits for a request
        with contextlib.suppress(OSError):
            if sock.recv(1):
                return False  # the app spoke first
        return forward.error(port) is not None
    finally:
        with contextlib.suppress(OSError):
            forward.close()


def not_listening(rest: Rest, namespace: str, pods: list[Obj]) -> str:
    """What a ready pod does not listen on yet, or ""."""
    for pod in pods:
        if not is_ready(pod) or pod["metadata"].get("deletionTimestamp"):
            continue
        name = str(pod["metadata"]["name"])
        for container, port in unprobed_ports(pod):
            if refused(rest, namespace, name, port):
                return (
                    f"pod {name}: container {container} runs, but nothing listens on its port "
                    f"{port} yet"
                )
    return ""


def wait_listening(
    rest: Rest,
    namespace: str,
    pods: Callable[[str], list[Obj]],
    services: Collection[str],
    timeout: float,
    total: float,
    cancel: threading.Event | None = None,
) -> None:
    """Return when the ready pods of `services` listen (or `cancel` is set); DeployError once
    `timeout` has passed. `total` is the whole ready timeout, for the message."""
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending:
        states = {s: not_listening(rest, namespace, pods(s)) for s in pending}
        pending = [s for s in pending if states[s]]
        if not pending or (cancel is not None and cancel.is_set()):
            return
        if time.monotonic() >= deadline:
            s = pending[0]
            raise DeployError(
                f"service '{s}' did not become ready within {total:.0f} s:\n  {states[s]}",
                service=s,
            )
        if cancel is None:
            time.sleep(POLL)
        elif cancel.wait(POLL):
            return
