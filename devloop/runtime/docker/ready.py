"""Wait until a service's containers run and pass their readiness probes, or say why they do not."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from devloop.errors import DeployError
from devloop.model.manifest import LABEL_NAME, LABEL_SESSION
from devloop.runtime.docker.events import engine_time
from devloop.runtime.docker.podspec import ContainerSpec
from devloop.runtime.docker.probe import Exec, describe, run_probe

POLL = 0.2
MAX_PERIOD = (
    1.0  # probe at least this often: a 10 s periodSeconds would make `run` slow for nothing
)
CRASHES = 2  # restarts after which a container counts as crash-looping
STABLE = (
    1.0  # seconds a container without a probe must keep running: a crash on start is not "ready"
)
LOG_LINES = 10


@dataclass
class _Track:
    spec: ContainerSpec
    state: str = "has no container yet"
    cid: str | None = None
    started: str = ""  # State.StartedAt the probe timing below belongs to
    seen: float = 0.0  # when this start was first seen running
    next_probe: float = 0.0
    failing_since: float | None = None


class ReadyWaiter:
    """Polls the session's containers; probes run from the host, or inside the container."""

    def __init__(
        self, api: docker.APIClient, session: str, network: str, run: Callable[[str], Exec]
    ) -> None:
        self._api = api
        self._session = session
        self._network = network
        self._run = run  # container id → an Exec in that container

    def wait(
        self, specs: Sequence[ContainerSpec], timeout: float, cancel: threading.Event | None
    ) -> None:
        deadline = time.monotonic() + timeout
        pending = [_Track(s) for s in specs]
        while pending:
            by_name = self._containers()
            pending = [t for t in pending if not self._step(t, by_name.get(t.spec.name))]
            if not pending or (cancel is not None and cancel.is_set()):
                return
            if time.monotonic() > deadline:
                t = pending[0]
                raise self._failure(
                    t, f"did not become ready within {timeout:.0f} s: {t.state}", len(pending)
                )
            if cancel is not None:
                cancel.wait(POLL)
            else:
                time.sleep(POLL)

    def _containers(self) -> dict[str, str]:
        """devloop.name → id of the container carrying that name (or the newest replacement)."""
        out: dict[str, tuple[bool, int, str]] = {}
        for c in self._api.containers(
            all=True, filters={"label": [f"{LABEL_SESSION}={self._session}"]}
        ):
            name = (c.get("Labels") or {}).get(LABEL_NAME, "")
            rank = (f"/{name}" in (c.get("Names") or []), int(c.get("Created") or 0), str(c["Id"]))
            out[name] = max(out.get(name, rank), rank)
        return {name: rank[2] for name, rank in out.items()}

    def _step(self, t: _Track, cid: str | None) -> bool:
        """Advance one container's check; True once it is ready."""
        t.cid = cid
        if cid is None:
            t.state = "has no container yet"
            return False
        try:
            info = self._api.inspect_container(cid)
        except docker.errors.NotFound:
            return False
        st = info["State"]
        if st.get("Running") and not st.get("Restarting"):
            return self._probe(t, info)
        crashed = int(info.get("RestartCount") or 0)
        t.state = _describe_state(st, crashed)
        if (
            st.get("Status") in ("exited", "dead") and not st.get("Restarting")
        ) or crashed >= CRASHES:
            raise self._failure(t, t.state)
        return False

    def _probe(self, t: _Track, info: dict[str, Any]) -> bool:
        probe = t.spec.readiness
        now = time.monotonic()
        if info["State"]["StartedAt"] != t.started:  # a new start: timing begins again
            t.started, t.seen, t.failing_since = info["State"]["StartedAt"], now, None
            t.next_probe = now + float((probe or {}).get("initialDelaySeconds") or 0)
        ip = ((info["NetworkSettings"].get("Networks") or {}).get(self._network) or {}).get(
            "IPAddress"
        ) or None
        if not probe:
            started = engine_time(t.started) or 0.0
            t.state = "is starting"
            return max(time.time() - started, now - t.seen) >= STABLE and self._listening(t, ip)
        if now < t.next_probe:
            return False
        period = float(probe.get("periodSeconds") or 10)
        t.next_probe = now + min(period, MAX_PERIOD)
        result = run_probe(probe, t.spec, ip, self._run(info["Id"]))
        if result.ok:
            return True
        t.state = f"readiness probe {describe(probe)} failing: {result.detail}"
        if not result.answered:
            t.failing_since = None
            return False
        t.failing_since = t.failing_since or now
        if now - t.failing_since >= period * int(probe.get("failureThreshold") or 3):
            raise self._failure(t, t.state)
        return False

    def _listening(self, t: _Track, ip: str | None) -> bool:
        """Without a readiness probe, a container that publishes ports is ready once its process
        accepts connections on them (as compose's --wait does with a healthcheck). Asked at the
        container's address: the engine's proxy on 127.0.0.1 accepts before the app listens."""
        for p in t.spec.publish:
            if ip is None:
                return True  # no address to ask (not on the network): running has to do
            try:
                with socket.create_connection((ip, p.container), timeout=1.0):
                    continue
            except ConnectionRefusedError:
                t.state = (
                    f"runs, but nothing listens on its port {p.container} yet (published as "
                    f"127.0.0.1:{p.local})"
                )
                return False
            except OSError:
                return True  # this host cannot reach the bridge network (rootless, a VM)
        return True

    def _failure(self, t: _Track, what: str, pending: int = 1) -> DeployError:
        others = f" ({pending - 1} more container(s) not ready)" if pending > 1 else ""
        text = f"service '{t.spec.service}' is not ready: container {t.spec.name} {what}{others}"
        return DeployError(text + self._logs(t.cid), service=t.spec.service)

    def _logs(self, cid: str | None) -> str:
        if cid is None:
            return ""
        try:
            raw = self._api.logs(cid, tail=LOG_LINES)
        except docker.errors.APIError:
            return ""
        lines = raw.decode(errors="replace").rstrip("\n").splitlines()
        if not lines:
            return "\nit wrote no log lines"
        return "\nlast log lines:\n" + "\n".join(f"  {line}" for line in lines)


def _describe_state(st: dict[str, Any], restarts: int) -> str:
    code = st.get("ExitCode")
    why = f"exited with code {code}" + (" (out of memory)" if st.get("OOMKilled") else "")
    if st.get("Error"):
        why += f": {st['Error']}"
    if st.get("Restarting") or restarts:
        return f"keeps crashing: {why}, restarted {restarts} time(s)"
    if st.get("Status") == "created":
        return "is created but not started"
    return why
