"""Stable local ports for pods: a listener on 127.0.0.1 per service port, each connection forwarded
to a ready pod.

The listener outlives the pods: every accepted connection picks whichever pod is ready
now, so after a redeploy the next connection reaches the new pod by itself. When none
is ready, it waits with back-off (50 ms, doubling to 5 s) rather than failing.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from devloop.runtime.kubernetes.rest import Rest

PickPod = Callable[[], str | None]  # the name of a ready pod of the service, if any
BACKOFF_START, BACKOFF_MAX = 0.05, 5.0
CONNECT_PATIENCE = 120.0  # how long a connection waits for a ready pod
_BUF = 65536


class PortForward:
    """Listens on 127.0.0.1:`local` and forwards each connection to `remote` in a pod from
    `pick`."""

    def __init__(
        self,
        rest: Rest,
        namespace: str,
        local: int,
        remote: int,
        pick: PickPod,
        stop: threading.Event,
    ) -> None:
        self._rest = rest
        self._namespace = namespace
        self.local = local
        self._remote = remote
        self._pick = pick
        self._stop = stop
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", local))  # OSError when taken: the caller reports it
        self._listener.listen(64)
        self._listener.settimeout(0.25)
        threading.Thread(target=self._accept, name=f"devloop-forward-{local}", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local}"

    def _accept(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        finally:
            self._listener.close()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.closing(conn):
            opened = self._open()
            if opened is None:
                return
            forward, remote = opened
            try:
                _pump(conn, remote, self._stop)
            finally:
                with contextlib.suppress(OSError):
                    forward.close()

    def _open(self) -> tuple[Any, socket.socket] | None:
        """A port-forward stream to a ready pod, retried with back-off until one is ready."""
        delay, deadline = BACKOFF_START, time.monotonic() + CONNECT_PATIENCE
        while not self._stop.is_set() and time.monotonic() < deadline:
            pod = self._pick()
            if pod is not None:
                try:
                    return open_port(self._rest, self._namespace, pod, self._remote)
                except (ApiException, OSError, ValueError):
                    pass  # the pod went between picking and connecting: pick again
            self._stop.wait(delay)
            delay = min(delay * 2, BACKOFF_MAX)
        return None


def open_port(rest: Rest, namespace: str, pod: str, port: int) -> tuple[Any, socket.socket]:
    """A port-forward stream to `port` of `pod` and its local socket (closed, with the stream's
    `error(port)` set, when the pod refuses the connection)."""
    forward = portforward(
        rest.fresh_core().connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port)
    )
    return forward, forward.socket(port)


def _pump(a: socket.socket, b: socket.socket, stop: threading.Event) -> None:
    """Copy bytes both ways until the pod's side closes (or both have)."""
    a_open = True
    while not stop.is_set():
        readable, _, _ = select.select([s for s in (a, b) if s is b or a_open], [], [], 0.5)
        for sock in readable:
            try:
                data = sock.recv(_BUF)
            except OSError:
                return
            if not data:
                if sock is b:
                    return
                a_open = False  # the client finished sending; the answer may still come
                continue
            try:
                (b if sock is a else a).sendall(data)
            except OSError:
                return
