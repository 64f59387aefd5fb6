"""Outgoing: a loopback listener per port of every other Service, forwarding to where it runs now.

The target is looked up on every connection, so a forward survives the replacement of the
container or pod behind it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from devloop.bridge.env import ServicePort
from devloop.bridge.splice import splice

Connect = Callable[[str, int], socket.socket]  # (Service name, its port) -> a stream to it now


@dataclass(frozen=True)
class Forward:
    service: str  # the Service name
    port: int  # the Service's port
    host: str  # the loopback address it is reachable at here
    local: int  # the loopback port


class Forwards:
    """One listener per Service port; `start()` binds them all (ip_for gives the address)."""

    def __init__(self, ports: Sequence[ServicePort], connect: Connect) -> None:
        self._ports = ports
        self._connect = connect
        self._listeners: list[socket.socket] = []
        self._stop = threading.Event()
        self.forwards: list[Forward] = []

    def start(self, ip_for: Callable[[str], str], same_port: bool) -> list[Forward]:
        for p in self._ports:
            ip = ip_for(p.service)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((ip, p.port if same_port else 0))
            sock.listen(64)
            self._listeners.append(sock)
            fwd = Forward(p.service, p.port, ip, sock.getsockname()[1])
            self.forwards.append(fwd)
            threading.Thread(
                target=self._accept, args=(sock, p), name="devloop-forward", daemon=True
            ).start()
        return self.forwards

    def stop(self) -> None:
        self._stop.set()
        for s in self._listeners:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self, sock: socket.socket, port: ServicePort) -> None:
        while not self._stop.is_set():
            try:
                client, _ = sock.accept()
            except OSError:
                return
            threading.Thread(
                target=self._carry, args=(client, port), name="devloop-forward", daemon=True
            ).start()

    def _carry(self, client: socket.socket, port: ServicePort) -> None:
        try:
            upstream = self._connect(port.service, port.port)
        except OSError:
            client.close()
            return
        splice(client, upstream)


def env_urls(forwards: Sequence[Forward]) -> dict[str, str]:
    """`<SERVICE>_HOST` / `<SERVICE>_PORT` (first port of each Service), and `<SERVICE>_PORT_<N>`
    for every port: what the local process dials when the names do not resolve here."""
    out: dict[str, str] = {}
    for f in forwards:
        key = "".join(c if c.isalnum() else "_" for c in f.service.upper())
        out.setdefault(f"{key}_HOST", f.host)
        out.setdefault(f"{key}_PORT", str(f.local))
        out[f"{key}_PORT_{f.port}"] = str(f.local)
    return out
