"""One sync channel per running container, and a batch applied to all of a service's at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from devloop.errors import SyncError
from devloop.runtime.base import Instance, Transport
from devloop.sync.channel import Ack, Channel
from devloop.sync.payload import Payload

OpenStream = Callable[[Instance, Sequence[str]], Transport]  # Runtime.open_stream


@dataclass(frozen=True)
class Outcome:
    """What happened to a batch in one container: an acknowledgement or the error."""

    instance: Instance
    ack: Ack | None
    error: SyncError | None = None


@dataclass
class _Slot:
    generation: str
    channel: Channel
    service: str


class ChannelPool:
    """Keeps a Channel per container id; replaces it when the container's generation changes."""

    def __init__(self, open_stream: OpenStream, workers: int = 8) -> None:
        self._open_stream = open_stream
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None

    def sync(
        self, service: str, instances: Sequence[Instance], payload: Payload, timeout: float = 30.0
    ) -> list[Outcome]:
        """Apply `payload` to every instance of `service` in parallel; one Outcome each, in
        order."""
        channels = self._channels(service, instances)
        if len(channels) == 1:  # the common case: no thread hand-off
            return [_apply(instances[0], channels[0], payload, timeout)]
        futures = [
            self._pool().submit(_apply, inst, ch, payload, timeout)
            for inst, ch in zip(instances, channels, strict=True)
        ]
        return [f.result() for f in futures]

    def restart(
        self, service: str, instances: Sequence[Instance]
    ) -> list[tuple[Instance, bool | SyncError]]:
        """Restart the process of every instance through its channel, in parallel: True where
        it restarted, False where the channel cannot (use the runtime), or the error."""
        channels = self._channels(service, instances)
        if len(channels) == 1:
            return [_restart(instances[0], channels[0])]
        futures = [
            self._pool().submit(_restart, inst, ch)
            for inst, ch in zip(instances, channels, strict=True)
        ]
        return [f.result() for f in futures]

    def warm(self, service: str, instances: Sequence[Instance]) -> list[Outcome]:
        """Open the channels of `service`'s containers ahead of the first edit, in parallel."""
        channels = self._channels(service, instances)
        futures = [
            self._pool().submit(_warm, inst, ch)
            for inst, ch in zip(instances, channels, strict=True)
        ]
        return [f.result() for f in futures]

    def forget(self, service: str) -> None:
        """Close every channel of `service` (its containers are gone or being replaced)."""
        self._channels(service, [])

    def close(self) -> None:
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
            executor, self._executor = self._executor, None
        for slot in slots:
            slot.channel.close()
        if executor is not None:
            executor.shutdown(wait=True)

    def _channels(self, service: str, instances: Sequence[Instance]) -> list[Channel]:
        """The channel for each instance; closes those of `service`'s containers that are gone."""
        wanted = {i.id for i in instances}
        stale: list[Channel] = []
        result: list[Channel] = []
        with self._lock:
            for cid, slot in list(self._slots.items()):
                if slot.service == service and cid not in wanted:
                    stale.append(self._slots.pop(cid).channel)
            for inst in instances:
                old = self._slots.get(inst.id)
                if old is None or old.generation != inst.generation:
                    if old is not None:
                        stale.append(old.channel)
                    self._slots[inst.id] = _Slot(inst.generation, self._channel(inst), service)
                result.append(self._slots[inst.id].channel)
        for channel in stale:
            channel.close()
        return result

    def _channel(self, inst: Instance) -> Channel:
        return Channel(lambda argv: self._open_stream(inst, argv), inst.name)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self._workers, thread_name_prefix="devloop-sync"
                )
            return self._executor


def _warm(inst: Instance, channel: Channel) -> Outcome:
    try:
        channel.warm()
        return Outcome(inst, None)
    except SyncError as exc:
        return Outcome(inst, None, exc)


def _apply(inst: Instance, channel: Channel, payload: Payload, timeout: float) -> Outcome:
    try:
        return Outcome(inst, channel.apply(payload, timeout))
    except SyncError as exc:
        return Outcome(inst, None, exc)


def _restart(inst: Instance, channel: Channel) -> tuple[Instance, bool | SyncError]:
    try:
        return inst, channel.restart()
    except SyncError as exc:
        return inst, exc
