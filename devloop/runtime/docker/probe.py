"""Kubernetes readiness probes (httpGet, tcpSocket, exec) run against a local Docker container."""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from devloop.errors import DevloopError
from devloop.runtime.docker.podspec import ContainerSpec

Exec = Callable[[Sequence[str], float], tuple[int, bytes]]  # argv, timeout → (exit code, output)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str  # what came back, for the user
    answered: bool  # the process answered (a status, an exit code); False: not listening yet


def describe(probe: Mapping[str, Any]) -> str:
    """The probe as a person would name it: 'httpGet :8080/healthz', 'exec [cat /ready]'."""
    if "httpGet" in probe:
        hg = probe["httpGet"]
        scheme = str(hg.get("scheme", "HTTP")).lower()
        return f"httpGet {scheme}://:{hg.get('port')}{hg.get('path', '/')}"
    if "tcpSocket" in probe:
        return f"tcpSocket :{probe['tcpSocket'].get('port')}"
    if "exec" in probe:
        return f"exec {list(probe['exec'].get('command') or [])}"
    return "probe " + ", ".join(sorted(probe))


def run_probe(
    probe: Mapping[str, Any], spec: ContainerSpec, ip: str | None, run: Exec
) -> ProbeResult:
    """One attempt of `probe`; network checks go from this host to the container's `ip`."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    if "httpGet" in probe:
        return _http(probe["httpGet"], spec, ip, timeout, run)
    if "tcpSocket" in probe:
        return _tcp(
            spec.port_number(probe["tcpSocket"].get("port")),
            probe["tcpSocket"].get("host") or ip,
            timeout,
        )
    if "exec" in probe:
        return _exec(list(probe["exec"].get("command") or []), timeout, run)
    return ProbeResult(
        True, "not checked locally", True
    )  # grpc: needs a client devloop does not have


def _http(
    hg: Mapping[str, Any], spec: ContainerSpec, ip: str | None, timeout: float, run: Exec
) -> ProbeResult:
    port = spec.port_number(hg.get("port", 80))
    path = str(hg.get("path") or "/")
    scheme = str(hg.get("scheme") or "HTTP").lower()
    host = hg.get("host") or ip
    if host is None:
        return _wget(
            scheme, port, path, timeout, run, "the container has no address on the project network"
        )
    headers = {str(h["name"]): str(h["value"]) for h in hg.get("httpHeaders") or []}
    conn: http.client.HTTPConnection
    if scheme == "https":  # like the kubelet: no certificate verification
        conn = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl._create_unverified_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read(200).decode(errors="replace").strip()
        detail = f"HTTP {resp.status}" + (f": {body}" if body and resp.status >= 400 else "")
        return ProbeResult(200 <= resp.status < 400, detail, True)
    except ConnectionRefusedError:
        return ProbeResult(False, "connection refused", False)
    except (OSError, http.client.HTTPException) as exc:
        # a host that cannot route to the bridge network (rootless, VM): ask from inside
        return _wget(scheme, port, path, timeout, run, f"{host}:{port} from this host: {exc}")
    finally:
        conn.close()


def _wget(scheme: str, port: int, path: str, timeout: float, run: Exec, why: str) -> ProbeResult:
    url = f"{scheme}://127.0.0.1:{port}{path}"
    try:
        # no -T: Debian's static busybox wget crashes with it; the exec's own timeout bounds it
        code, out = run(["wget", "-q", "-O", "/dev/null", url], timeout + 5)
    except DevloopError as exc:
        return ProbeResult(False, f"{why}; wget in the container failed: {exc}", False)
    text = out.decode(errors="replace").strip()
    if code == 0:
        return ProbeResult(True, "HTTP ok (wget in the container)", True)
    if code in (126, 127):
        return ProbeResult(False, f"{why}; and the image has no wget to ask from inside", False)
    return ProbeResult(
        False, f"wget {url} in the container: {text or f'exit code {code}'}", "refused" not in text
    )


def _tcp(port: int, host: str | None, timeout: float) -> ProbeResult:
    if host is None:
        return ProbeResult(False, "the container has no address on the project network", False)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ProbeResult(True, f"{host}:{port} accepts connections", True)
    except OSError as exc:
        return ProbeResult(False, f"connecting to {host}:{port}: {exc}", False)


def _exec(argv: list[str], timeout: float, run: Exec) -> ProbeResult:
    if not argv:
        return ProbeResult(False, "exec probe without a command", True)
    try:
        code, out = run(argv, timeout)
    except DevloopError as exc:
        return ProbeResult(False, str(exc), True)
    text = out.decode(errors="replace").strip()[-300:]
    return ProbeResult(code == 0, f"exit code {code}" + (f": {text}" if text else ""), True)
