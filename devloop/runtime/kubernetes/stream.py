"""A byte stream to a process in a pod: one exec over a WebSocket, stdin written at once, stdout by
line.

The exec WebSocket carries one channel per stream (0 stdin, 1 stdout, 2 stderr, 3 the
exit status), each message prefixed by its channel byte. Opened with `binary=True`,
the client hands channel data over as bytes and sends bytes written to stdin as one
binary message each, so a tar of any content arrives unchanged and without delay.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from websocket import WebSocketException

from devloop.errors import SyncError
from devloop.runtime.base import StreamClosed, StreamTimeout
from devloop.runtime.kubernetes.rest import Rest
from devloop.runtime.lines import pop_line, tail_text

STDOUT, STDERR, ERROR = 1, 2, 3
_ERR_KEEP = 4096
_CHUNK = 1 << 20  # one WebSocket message per MiB: the server's frame limit stays far away


class KubeTransport:
    """`argv` running in `container` of `pod` with stdin, stdout and stderr attached (the Transport
    protocol)."""

    def __init__(
        self,
        rest: Rest,
        namespace: str,
        pod: str,
        container: str,
        argv: Sequence[str],
        *,
        stdin: bool = True,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        self._what = f"{argv[0]} in pod {pod}"
        self._before_send = before_send  # called once, before the first bytes go to stdin
        try:
            self._ws: Any = stream(
                rest.fresh_core().connect_get_namespaced_pod_exec,
                pod,
                namespace,
                container=container,
                command=list(argv),
                stdin=stdin,
                stdout=True,
                stderr=True,
                tty=False,
                binary=True,
                _preload_content=False,
            )
        except ApiException as exc:
            raise SyncError(f"starting {self._what} failed: {exc.reason or exc}") from None
        self._out = bytearray()
        self._err = bytearray()
        self._status = b""
        self._stalled = False  # no answer in time: the connection may be dead without a word

    def send(self, data: bytes) -> None:
        before, self._before_send = self._before_send, None
        if before is not None:
            before()
        try:
            for i in range(0, max(len(data), 1), _CHUNK):
                self._ws.write_stdin(bytes(data[i : i + _CHUNK]))
        except (WebSocketException, OSError) as exc:
            raise StreamClosed(f"writing to {self._what} failed: {exc}{self._notes()}") from exc

    def readline(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            line = pop_line(self._out)
            if line is not None:
                return line
            if not self._ws.is_open():
                tail = tail_text(self._out)
                raise StreamClosed(
                    f"{self._what} ended{': ' + tail if tail else ''}{self._notes()}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                self._stalled = True
                raise StreamTimeout(f"no answer from {self._what} in time{self._notes()}")
            self._receive(left)

    def read_all(self, timeout: float) -> tuple[bytes, bytes]:
        """Everything on stdout and stderr until the process ends."""
        deadline = time.monotonic() + timeout
        while self._ws.is_open():
            left = deadline - time.monotonic()
            if left <= 0:
                raise StreamTimeout(f"{self._what} did not finish within {timeout:.0f} s")
            self._receive(left)
        out, err = bytes(self._out), bytes(self._err)
        self._out.clear()
        return out, err

    def exit_code(self) -> int:
        """The exit code once the process has ended (from the status channel)."""
        if not self._status.strip():
            return 0
        doc = yaml.safe_load(self._status.decode(errors="replace")) or {}
        if doc.get("status") == "Success":
            return 0
        for cause in (doc.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                return int(cause.get("message", 1))
        raise SyncError(
            f"{self._what} failed: {doc.get('message') or self._status.decode(errors='replace')}"
        )

    def close_stdin(self) -> None:
        with contextlib.suppress(WebSocketException, OSError):
            self._ws.close_channel(
                0
            )  # v5 protocol only; older servers see EOF when the socket closes

    def close(self) -> None:
        # after a stall, waiting for the server's close frame (3 s by default) would only wait
        # on a connection that may be dead
        with contextlib.suppress(WebSocketException, OSError):
            self._ws.close(timeout=0 if self._stalled else 3)
        # once the server has sent its close frame, close() returns early and leaves the socket open
        with contextlib.suppress(WebSocketException, OSError, AttributeError):
            self._ws.sock.shutdown()

    def _receive(self, timeout: float) -> None:
        try:
            self._ws.update(timeout=min(timeout, 1.0))
        except (WebSocketException, OSError) as exc:
            raise StreamClosed(f"reading from {self._what} failed: {exc}{self._notes()}") from exc
        self._out += self._ws.read_channel(STDOUT) or b""
        self._err = (self._err + (self._ws.read_channel(STDERR) or b""))[-_ERR_KEEP:]
        self._status += self._ws.read_channel(ERROR) or b""

    def _notes(self) -> str:
        text = bytes(self._err).decode(errors="replace").strip()
        note = f" (stderr: {text})" if text else ""
        status = self._status.decode(errors="replace").strip()
        if status:
            try:
                doc = yaml.safe_load(status) or {}
                status = str(doc.get("message") or status) if isinstance(doc, dict) else status
            except yaml.YAMLError:
                pass
            if "ExitCode" not in status:
                note += f" ({status})"
        return note


def kube_exec(
    rest: Rest, namespace: str, pod: str, container: str, argv: Sequence[str], timeout: float = 30.0
) -> tuple[int, bytes]:
    """Run `argv` to completion in the container: (exit code, stdout then stderr)."""
    transport = KubeTransport(rest, namespace, pod, container, argv, stdin=False)
    try:
        out, err = transport.read_all(timeout)
        return transport.exit_code(), out + err
    finally:
        transport.close()
