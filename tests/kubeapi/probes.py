"""Readiness / liveness / startup probes, run from the host against the pod's IP."""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass

from tests.kubeapi.dockerops import Docker, explain
from tests.kubeapi.meta import Obj


def _port(c: Obj, port: int | str) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in c.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"unknown port {port!r}")


def _http(ip: str, c: Obj, spec: Obj, timeout: float) -> tuple[bool, str]:
    port = _port(c, spec["port"])
    path = spec.get("path") or "/"
    url = f"http://{ip}:{port}{path}"
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
        conn.request("GET", path, headers={"User-Agent": "kube-probe/1.31"} | headers)
        status = conn.getresponse().status
    except TimeoutError:
        return False, (
            f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while '
            "awaiting headers)"
        )
    except OSError as exc:
        return False, f'Get "{url}": dial tcp {ip}:{port}: connect: {_errno_text(exc)}'
    finally:
        conn.close()
    if 200 <= status < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {status}"


def _errno_text(exc: OSError) -> str:
    return (
        "connection refused"
        if isinstance(exc, ConnectionRefusedError)
        else (exc.strerror or str(exc))
    )


def _tcp(ip: str, c: Obj, spec: Obj, timeout: float) -> tuple[bool, str]:
    port = _port(c, spec["port"])
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, f"dial tcp {ip}:{port}: connect: {_errno_text(exc)}"


def _exec(docker: Docker, container_id: str, spec: Obj) -> tuple[bool, str]:
    try:
        exec_id = docker.api.exec_create(container_id, spec.get("command") or [])["Id"]
        output: bytes = docker.api.exec_start(exec_id)
        code = docker.api.exec_inspect(exec_id)["ExitCode"]
    except Exception as exc:
        return False, explain(exc)
    if code == 0:
        return True, ""
    return False, output.decode(errors="replace").strip()


def run(docker: Docker, ip: str, container_id: str, c: Obj, probe: Obj) -> tuple[bool, str]:
    """(passed, why not) for one probe attempt."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            return _http(ip, c, probe["httpGet"], timeout)
        if "tcpSocket" in probe:
            return _tcp(ip, c, probe["tcpSocket"], timeout)
        if "exec" in probe:
            return _exec(docker, container_id, probe["exec"])
    except ValueError as exc:
        return False, str(exc)
    return True, ""


@dataclass
class Prober:
    """One probe's schedule and its consecutive results, as the kubelet's probe worker keeps
    them."""

    spec: Obj
    started: float
    result: bool
    next_due: float = 0.0
    successes: int = 0
    failures: int = 0
    last_message: str = ""

    def __post_init__(self) -> None:
        self.next_due = self.started + float(self.spec.get("initialDelaySeconds", 0))

    def due(self, now: float) -> bool:
        return now >= self.next_due

    def record(self, ok: bool, message: str) -> bool:
        """Count one attempt; True when the overall result flipped."""
        self.next_due = time.monotonic() + float(self.spec.get("periodSeconds", 10))
        self.last_message = message
        if ok:
            self.successes, self.failures = self.successes + 1, 0
        else:
            self.successes, self.failures = 0, self.failures + 1
        before = self.result
        if ok and self.successes >= int(self.spec.get("successThreshold", 1)):
            self.result = True
        elif not ok and self.failures >= int(self.spec.get("failureThreshold", 3)):
            self.result = False
        return before != self.result
