"""The sync channel: a long-lived agent in a container that applies framed batches.

Opening an exec costs ~50 ms and a write to an open one ~1 ms, so each container gets
one agent (devloop/sync/agent.sh) reading batches from stdin for as long as the session
runs. The channel reopens a broken stream once and retries the batch (applying a batch
twice is harmless: deletes, then an extraction that overwrites); when a long-lived
agent cannot be opened at all, it runs the agent once per batch instead.

A connection can also die without a word (a NAT entry or a load balancer forgetting it, a
laptop changing networks): no FIN, no RST, writes still succeed. So each batch on an open
stream goes out behind a ping (an empty batch the agent acknowledges before it reads the
batch; sent in the same write, it costs no round trip); no answer to the ping within
PING_TIMEOUT means the stream is dead, and the batch goes again over a fresh one, with a
warning, seconds later instead of after the whole batch timeout.
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
PING_TIMEOUT = 3.0  # an agent answers a ping in ~1 ms; a round trip to any cluster is far less
PING = b"0 0 0\n"  # nothing to delete or extract: the agent answers "ok 0" at once
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
    warning: str = ""  # something the user should know (a dead stream replaced)


@functools.cache
def agent_script() -> str:
    """agent.sh without its comment lines and indentation: on Kubernetes the script travels
    in the exec URL's query (sh -c SCRIPT), and URL-encoded the commented file is 8.5 kB,
    past the 8 kB request line that API servers' fronts and aiohttp-like servers accept;
    stripped it is 4.6 kB. (No heredocs or multi-line strings depend on indentation.)"""
    text = resources.files("devloop.sync").joinpath("agent.sh").read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return "".join(f"{line}\n" for line in lines if line and not line.startswith("#"))


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
        self._warning = ""

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
            self._warning = ""
            if self._per_batch:
                self._once(payload, seq, timeout)
            else:
                self._stream(payload, seq, timeout)
            ms = (time.perf_counter() - start) * 1000
            return Ack(seq, payload.size, ms, self.mode, self._warning)

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
            ping = attempt == 1  # a retry goes over a stream that has just answered `ready`
            try:
                _exchange(self._transport, payload, seq, timeout, ping)
                return
            except BatchFailed:
                raise  # the agent answered: the stream is fine
            except _NoPong as exc:
                self._drop()
                self._warning = (
                    f"the sync stream{' to ' + self.name if self.name else ''} stopped answering "
                    f"({exc}; a dropped connection?): reopened it and sent the batch again"
                )
                continue
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


class _NoPong(StreamTimeout):
    """The agent did not answer a ping: the stream is dead, though nothing said so."""


def _exchange(
    transport: Transport, payload: Payload, seq: int, timeout: float, ping: bool = False
) -> None:
    """Send one framed batch (behind a ping: an empty batch numbered 0) and read its
    acknowledgement."""
    if not ping:
        transport.send(payload.frame(seq))
    else:
        transport.send(PING + payload.frame(seq))
        try:
            pong = transport.readline(PING_TIMEOUT).decode(errors="replace")
        except StreamTimeout:
            raise _NoPong(f"no answer to a ping in {PING_TIMEOUT:.0f} s") from None
        if pong != "ok 0":
            raise StreamClosed(f"the sync agent answered {pong!r} to a ping")
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
