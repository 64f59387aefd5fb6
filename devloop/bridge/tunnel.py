"""devloop's end of the reverse tunnel: idle connections to the relay, each handed one client.

devloop keeps `idle` connections open to the relay's control port. When the relay hands one a
client (``CONN <port>``), devloop opens a fresh idle one, connects to the local process on that
port, answers ``OK`` (``FAIL`` when the local process refused) and splices the two.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Mapping

from devloop.bridge.relay import HELLO, IDLE, OK
from devloop.bridge.splice import splice

Dial = Callable[[], socket.socket]


class Tunnel:
    """Keeps `idle` tunnel connections open through `dial` until `stop()`."""

    def __init__(
        self,
        dial: Dial,
        local_ports: Mapping[int, int],
        *,
        idle: int = 4,
        on_error: Callable[[str], None] = lambda _m: None,
        on_relayed: Callable[[int, int], None] = lambda _p, _n: None,
        release: Callable[[socket.socket], None] = lambda _s: None,
    ) -> None:
        self._dial = dial
        self._ports = dict(local_ports)  # relay port -> port of the local process
        self._idle = idle
        self._on_error = on_error
        self._on_relayed = on_relayed
        self._release = release
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.relayed = 0
        self.failed = 0
        self.ready = threading.Event()  # set once the relay has answered a tunnel

    def start(self) -> None:
        for _ in range(self._idle):
            self._spawn()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
            self._open.clear()

    def _spawn(self) -> None:
        if not self._stop.is_set():
            threading.Thread(target=self._serve, name="devloop-tunnel", daemon=True).start()

    def _serve(self) -> None:
        conn = self._connect()
        if conn is None:
            return
        try:
            line = _readline(conn)
        except OSError:
            line = b""
        if not line.startswith(b"CONN "):
            self._forget(conn)
            if not self._stop.is_set():
                time.sleep(0.2)  # the relay went away or restarts: try again, gently
                self._spawn()
            return
        self._spawn()  # keep the pool full while this one carries a client
        port = int(line.split()[1])
        try:
            local = socket.create_connection(("127.0.0.1", self._ports.get(port, port)), timeout=10)
            local.settimeout(None)
        except OSError as exc:
            self.failed += 1
            self._on_error(f"connecting to the local process on port {port} failed: {exc}")
            with contextlib.suppress(OSError):
                conn.sendall(b"FAIL\n")
            self._forget(conn)
            return
        try:
            conn.sendall(OK)  # the relay sends the client's bytes only now
        except OSError:
            self._forget(conn, local)  # the relay tries another tunnel
            return
        with self._lock:
            self.relayed += 1
            total = self.relayed
            self._open.add(local)
        self._on_relayed(port, total)
        splice(conn, local)
        self._forget(conn, local)

    def _connect(self) -> socket.socket | None:
        delay = 0.05
        while not self._stop.is_set():
            try:
                conn = self._dial()
                with self._lock:
                    self._open.add(conn)
                conn.sendall(HELLO)
                if _readline(conn) + b"\n" != IDLE:
                    self._forget(conn)
                    raise OSError("the relay did not answer")
                self.ready.set()
                return conn
            except OSError:
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)
        return None

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                self._open.discard(s)
                with contextlib.suppress(OSError):
                    s.close()
        for s in socks:
            self._release(s)


def _readline(conn: socket.socket) -> bytes:
    """One line, read byte by byte so that nothing after it is consumed."""
    out = bytearray()
    while len(out) < 256:
        b = conn.recv(1)
        if not b:
            return bytes(out)
        if b == b"\n":
            return bytes(out)
        out += b
    return bytes(out)


def tcp_dial(host: str, port: int) -> Dial:
    def dial() -> socket.socket:
        s = socket.create_connection((host, port), timeout=5)
        s.settimeout(None)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return s

    return dial
