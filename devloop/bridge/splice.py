"""Copy bytes both ways between two sockets until both sides are done (two threads)."""

from __future__ import annotations

import contextlib
import socket
import threading


def splice(a: socket.socket, b: socket.socket, first: bytes = b"") -> None:
    """Pump a→b in a thread and b→a here; `first` goes to b before anything read from a. Closes
    both."""
    try:
        if first:
            b.sendall(first)
    except OSError:
        _close(a, b)
        return
    other = threading.Thread(target=_copy, args=(a, b), name="devloop-splice", daemon=True)
    other.start()
    _copy(b, a)
    other.join()
    _close(a, b)


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _close(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()
