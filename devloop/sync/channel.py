"""The sync channel: a long-lived agent in a container that applies framed batches.

Opening an exec costs ~50 ms and a write to an open one ~1 ms, so each container gets
one agent (devloop/sync/agent.sh) reading batches from stdin for as long as the session
runs. The channel reopens a broken stream once and retries the batch (applying a batch
twice is harmless: deletes, then an extraction that overwrites); when a long-lived
agent cannot be opened at all, it runs the agent once per batch instead.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from devloop.errors import SyncError
from devloop.runtime.base import StreamClosed, StreamTimeout, Transport
from devloop.sync.payload import Payload

READY_TIMEOUT = 15.0
_MISSING_SH = ("executable file not found", "no such file or directory", "not found")


class SyncUnavailable(SyncError):
    """The image lacks what the agent needs (sh, tar, dd): sync cannot work, rebuild instead."""

    def __init__(self, missing: str, container: str = "") -> None:
        where = f" in container {container}" if container else ""
        super().__init__(
            f"cannot sync files{where}: the image has no {missing} "
            f"(sync needs sh, tar and dd); rebuilding instead"
        )
        self.missing = missing


class BatchFailed(SyncError):
    """The agent ran the batch and reported a failure (a path not writable, a full disk)."""


Opener = Callable[[Sequence[str]], Transport]
Mode = Literal["stream", "exec"]


@dataclass(frozen=True)
class Ack:
    """The container applied a batch."""

    seq: int
    bytes: int  # payload bytes sent
    ms: float  # send → acknowledgement, reopening included
    mode: Mode  # "stream": the long-lived agent; "exec": one exec for this batch


@functools.cache
def agent_script() -> str:
    """agent.sh without comments and indentation: it travels in the exec request's URL on
    Kubernetes, where API servers cap the request line (the test server at 8 KiB)."""
    text = resources.files("devloop.sync").joinpath("agent.sh").read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("#")) + "\n"


def agent_argv(once: bool = False) -> list[str]:
    """The argv that runs the agent; `once`: apply one batch and exit."""
    return ["sh", "-c", agent_script(), "devloop-sync", *(["once"] if once else [])]


class Channel:
    """Sends payloads to one container's agent, keeping the agent open between batches."""

    def __init__(self, open_transport: Opener, name: str = "") -> None:
        self._open = open_transport
        self.name = name
        self._transport: Transport | None = None
        self._seq = 0
        self._per_batch = False
        self._lock = threading.Lock()

    @property
    def mode(self) -> Mode:
        return "exec" if self._per_batch else "stream"

    def apply(self, payload: Payload, timeout: float = 30.0) -> Ack:
        """Apply `payload` and wait for the acknowledgement.

        Raises BatchFailed when the agent reports a failure (the channel stays usable),
        SyncUnavailable when the image cannot run the agent, StreamTimeout when no answer
        came in `timeout` seconds, SyncError when the container cannot be reached at all.
        """
        with self._lock:
            start = time.perf_counter()
            self._seq += 1
            seq = self._seq
            if self._per_batch:
                self._once(payload, seq, timeout)
            else:
                self._stream(payload, seq, timeout)
            return Ack(seq, payload.size, (time.perf_counter() - start) * 1000, self.mode)

    def restart(self, timeout: float = 60.0) -> bool:
        """Restart the supervised process through the open agent (a write, not a ~50 ms exec);
        returns once the new process runs. False when this channel cannot (no long-lived agent,
        the container is not supervised): restart it the runtime's way instead."""
        with self._lock:
            if self._per_batch:
                return False
            try:
                if self._transport is None:
                    self._transport = self._start(agent_argv())
                self._seq += 1
                self._transport.send(f"{self._seq} 0 0 restart\n".encode())
                line = self._transport.readline(timeout).decode(errors="replace")
            except StreamTimeout:
                self._drop()
                raise
            except SyncError:
                self._drop()
                return False
            status, _, rest = line.partition(" ")
            got, _, message = rest.partition(" ")
            if status == "ok" and got == str(self._seq):
                return True
            if status == "err" and got == str(self._seq):
                if message.startswith("unsupervised"):
                    return False
                raise BatchFailed(f"restarting the process failed: {message.strip()}")
            self._drop()
            return False

    def warm(self) -> None:
        """Open the agent now, so the first edit does not pay for the exec (~50 ms)."""
        with self._lock:
            if self._transport is None and not self._per_batch:
                self._transport = self._start(agent_argv())

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _stream(self, payload: Payload, seq: int, timeout: float) -> None:
        for attempt in (1, 2):
            if self._transport is None:
                try:
                    self._transport = self._start(agent_argv())
                except SyncUnavailable:
                    raise
                except SyncError:
                    self._fall_back(payload, seq, timeout)
                    return
            try:
                _exchange(self._transport, payload, seq, timeout)
                return
            except BatchFailed:
                raise  # the agent answered: the stream is fine
            except StreamTimeout:
                self._drop()  # mid-batch state unknown: the next batch starts a fresh agent
                raise
            except SyncError:  # StreamClosed, or whatever another runtime's transport raises
                self._drop()
                if attempt == 2:
                    raise

    def _fall_back(self, payload: Payload, seq: int, timeout: float) -> None:
        """A long-lived agent cannot be opened: from now on, one agent per batch."""
        transport = self._start(agent_argv(once=True))  # raises when even that fails
        self._per_batch = True
        _exchange_once(transport, payload, seq, timeout)

    def _once(self, payload: Payload, seq: int, timeout: float) -> None:
        _exchange_once(self._start(agent_argv(once=True)), payload, seq, timeout)

    def _start(self, argv: Sequence[str]) -> Transport:
        """Open the agent and wait for its `ready` line."""
        transport = self._open(argv)
        try:
            _await_ready(transport, self.name)
        except BaseException:
            transport.close()
            raise
        return transport

    def _drop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def _await_ready(transport: Transport, name: str) -> None:
    try:
        line = transport.readline(READY_TIMEOUT).decode(errors="replace")
    except StreamClosed as exc:
        # no shell at all: the runtime reports that exec could not start `sh`
        if any(marker in str(exc).lower() for marker in _MISSING_SH):
            raise SyncUnavailable("sh", name) from exc
        raise
    if line.startswith("unavailable"):
        raise SyncUnavailable(line.removeprefix("unavailable").strip() or "sh", name)
    if not line.startswith("ready"):
        if any(marker in line.lower() for marker in _MISSING_SH):
            raise SyncUnavailable("sh", name)
        raise StreamClosed(f"the sync agent{' in ' + name if name else ''} did not start: {line}")


def _exchange_once(transport: Transport, payload: Payload, seq: int, timeout: float) -> None:
    try:
        _exchange(transport, payload, seq, timeout)
    finally:
        transport.close()


def _exchange(transport: Transport, payload: Payload, seq: int, timeout: float) -> None:
    """Send one framed batch and read its acknowledgement."""
    transport.send(payload.frame(seq))
    line = transport.readline(timeout).decode(errors="replace")
    status, _, rest = line.partition(" ")
    got, _, message = rest.partition(" ")
    if status == "ok" and got == str(seq):
        return
    if status == "err" and got == str(seq):
        raise BatchFailed(
            f"applying {payload.files} file(s) and {payload.deleted} delete(s) failed: {message}"
        )
    raise StreamClosed(f"the sync agent answered {line!r} to batch {seq}")
