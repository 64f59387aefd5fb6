"""`devloop dev`'s dashboard server: uvicorn on its own thread, bound to loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
import socket
import threading
from typing import Any

from devloop.errors import DevloopError
from devloop.ui.hub import Hub
from devloop.ui.web import Act, app

HOST = "127.0.0.1"
DEFAULT_PORT = 10350  # Tilt's: a port people already know for this
TRIES = 20  # ports tried from the default before asking for any free one


class Dashboard:
    """Serves the page and streams the hub's events; `act` steers the session once set."""

    def __init__(self, hub: Hub, port: int | None = None) -> None:
        self.hub = hub
        self.act: Act | None = None
        self._sock = _bind(port)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://{HOST}:{self.port}/"
        self._token = secrets.token_urlsafe(24)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import uvicorn

        asgi = app(self.hub, self._token, self.port, lambda: self.act)
        config = uvicorn.Config(
            asgi,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = server = uvicorn.Server(config)

        async def serve() -> None:
            self.hub.attach(asyncio.get_running_loop())
            await server.serve(sockets=[self._sock])

        self._thread = threading.Thread(
            target=asyncio.run, args=(serve(),), name="devloop-ui", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.hub.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._sock.close()


def _bind(port: int | None) -> socket.socket:
    """A listening socket on loopback: `port`, else the first free one from 10350, else any."""
    candidates = [port] if port is not None else [*range(DEFAULT_PORT, DEFAULT_PORT + TRIES), 0]
    for p in candidates:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, p))
            sock.listen(64)
            sock.set_inheritable(False)
            return sock
        except OSError as exc:
            sock.close()
            if port is not None:
                what = "is in use" if exc.errno == errno.EADDRINUSE else f"failed: {exc}"
                raise DevloopError(
                    f"the dashboard's port {HOST}:{port} {what} (--ui-port, or --no-ui)"
                ) from exc
    raise DevloopError("no free port on 127.0.0.1 for the dashboard (--no-ui to go without)")
