"""A byte stream to a process in a Docker container: one exec, its stdin and demultiplexed output.

Docker sends an exec's output on the hijacked HTTP connection as frames: an 8-byte
header (stream id: 1 stdout, 2 stderr; three zero bytes; big-endian payload length)
then the payload. `DockerTransport` reads those frames itself from the raw socket, so
a line on stdout is available the moment it arrives and a write to stdin is not held
back by any buffering.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

import docker
import docker.errors
import requests

from devloop.errors import SyncError
from devloop.runtime.base import StreamClosed, StreamTimeout
from devloop.runtime.lines import pop_line, tail_text

_HEADER = struct.Struct(">BxxxL")
_STDOUT, _STDERR = 1, 2
_ERR_KEEP = 4096  # stderr tail kept for error messages
_SEND_TIMEOUT = 120.0


class DockerTransport:
    """`argv` running in `container` with stdin, stdout and stderr attached (the Transport
    protocol)."""

    def __init__(self, api: docker.APIClient, container: str, argv: Sequence[str]) -> None:
        self._api = api
        self.container = container
        self._what = f"{argv[0]} in container {container[:12]}"
        try:
            self.exec_id: str = api.exec_create(
                container, list(argv), stdin=True, stdout=True, stderr=True, tty=False
            )["Id"]
            self._io: Any = api.exec_start(self.exec_id, socket=True)
        except docker.errors.APIError as exc:
            raise SyncError(f"starting {self._what} failed: {exc.explanation or exc}") from exc
        except requests.RequestException as exc:
            raise SyncError(
                f"starting {self._what} failed: the Docker engine did not answer: {exc}"
            ) from exc
        # on a unix socket exec_start returns a SocketIO; the socket itself lets us select()
        self._sock: socket.socket = getattr(self._io, "_sock", self._io)
        self._sock.settimeout(_SEND_TIMEOUT)
        if self._sock.family in (socket.AF_INET, socket.AF_INET6):
            # a header and a small tar must leave at once, not wait for Nagle's timer
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._raw = bytearray()  # received, not yet demultiplexed
        self._out = bytearray()  # stdout not yet returned as lines
        self._err = bytearray()
        self._eof = False

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise StreamClosed(
                f"writing to {self._what} failed: {exc}{self._stderr_note()}"
            ) from exc

    def readline(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            line = pop_line(self._out)
            if line is not None:
                return line
            if self._eof:
                tail = tail_text(self._out)
                raise StreamClosed(
                    f"{self._what} ended{': ' + tail if tail else ''}{self._stderr_note()}"
                )
            self._receive(deadline)

    def read_all(self, timeout: float) -> tuple[bytes, bytes]:
        """Everything on stdout and stderr until the process closes the stream."""
        deadline = time.monotonic() + timeout
        while not self._eof:
            self._receive(deadline)
        out, err = bytes(self._out), bytes(self._err)
        self._out.clear()
        return out, err

    def close_stdin(self) -> None:
        """Signal end of input: the process reads EOF on stdin."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise StreamClosed(f"closing the input of {self._what} failed: {exc}") from exc

    def exit_code(self, timeout: float = 10.0) -> int:
        """The exec's exit code, once Docker has recorded it."""
        deadline = time.monotonic() + timeout
        while True:
            info = self._api.exec_inspect(self.exec_id)
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            if time.monotonic() > deadline:
                raise SyncError(f"{self._what} did not exit within {timeout:.0f} s")
            time.sleep(0.01)

    def close(self) -> None:
        # The SDK keeps the HTTP response alive on the SocketIO (`_response`); closed after its
        # socket, Python 3.13's http.client raises from the response's finalizer (a flush of a
        # closed file), so it goes first.
        response = getattr(self._io, "_response", None)
        for step in (
            response.close if response is not None else (lambda: None),
            lambda: self._sock.shutdown(socket.SHUT_RDWR),
            self._sock.close,
            self._io.close,
        ):
            with contextlib.suppress(OSError, ValueError):  # already gone: best effort
                step()

    def _receive(self, deadline: float) -> None:
        """Wait until `deadline` for bytes and demultiplex them; StreamTimeout when none came."""
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self._sock], [], [], left)[0]:
            raise StreamTimeout(f"no answer from {self._what} in time{self._stderr_note()}")
        try:
            chunk = self._sock.recv(65536)
        except OSError as exc:
            raise StreamClosed(f"reading from {self._what} failed: {exc}") from exc
        if not chunk:
            self._eof = True
            return
        self._raw += chunk
        self._demux()

    def _demux(self) -> None:
        while len(self._raw) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self._raw)
            if len(self._raw) < _HEADER.size + size:
                return
            payload = self._raw[_HEADER.size : _HEADER.size + size]
            del self._raw[: _HEADER.size + size]
            if kind == _STDERR:
                self._err = (self._err + payload)[-_ERR_KEEP:]
            else:
                self._out += payload

    def _stderr_note(self) -> str:
        text = bytes(self._err).decode(errors="replace").strip()
        return f" (stderr: {text})" if text else ""


def docker_exec(
    api: docker.APIClient,
    container: str,
    argv: Sequence[str],
    stdin: bytes = b"",
    timeout: float = 60.0,
) -> tuple[int, bytes]:
    """Run `argv` in `container` with `stdin` as its input: (exit code, stdout then stderr)."""
    transport = DockerTransport(api, container, argv)
    try:
        if stdin:
            transport.send(stdin)
        transport.close_stdin()
        out, err = transport.read_all(timeout)
        return transport.exit_code(), out + err
    finally:
        transport.close()
