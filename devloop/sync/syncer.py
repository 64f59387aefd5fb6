"""Files into a service's running containers: planned syncs, replays, and what runs after them.

The session decides *what* to sync; the Syncer gets it into every container of
the service (one channel each, in parallel), remembers it for replay into
containers that come later, runs the rule's `then`, and reports each step.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from devloop.errors import DevloopError
from devloop.model.events import PATHS_SHOWN, Emit, Error, Restarted, SyncDone, WarningEvent
from devloop.model.project import Service
from devloop.runtime.base import Instance, Runtime
from devloop.sync.channel import SyncUnavailable
from devloop.sync.payload import Payload, PlannedSync, batch_for_plan, encode
from devloop.sync.pool import ChannelPool, Outcome
from devloop.sync.replay import Replay


class Syncer:
    def __init__(self, runtime: Runtime, emit: Emit) -> None:
        self._runtime = runtime
        self._emit = emit
        self._pool = ChannelPool(runtime.open_stream)
        self._replay = Replay()
        self._cache: dict[str, list[Instance]] = {}
        self._unavailable: set[str] = set()  # services whose image cannot run the agent
        self._said: set[str] = set()  # ... said once per session

    def can_sync(self, service: str) -> bool:
        return service not in self._unavailable

    def instances(self, service: str, *, fresh: bool = False) -> list[Instance]:
        """The service's containers, cached between changes to them (listing costs ~5 ms)."""
        cached = self._cache.get(service)
        if fresh or cached is None:
            cached = self._cache[service] = self._runtime.instances(service)
        return cached

    def forget(self, service: str) -> None:
        """Its containers changed (called from the runtime's watch thread): list them again next
        time."""
        self._cache.pop(service, None)

    def new_image(self, service: str) -> None:
        """A new image holds every file synced so far, and may be able to run the agent."""
        self._replay.reset(service)
        self._unavailable.discard(service)

    def sync(self, svc: Service, syncs: Iterable[PlannedSync], first_seen: float) -> bool:
        """Sync to every container of `svc`; False when it must be rebuilt instead."""
        syncs = list(syncs)
        batch = batch_for_plan(svc, syncs)
        for w in batch.warnings:
            self._emit(WarningEvent(w, svc.name))
        if not len(batch):
            return True
        instances = self.instances(svc.name)
        if not instances:
            self._emit(WarningEvent("no running container to sync to; rebuilding", svc.name))
            return False
        payload = encode(batch)
        for w in payload.warnings[len(batch.warnings) :]:
            self._emit(WarningEvent(w, svc.name))
        outcomes = self._pool.sync(svc.name, instances, payload)
        if any(o.error and not isinstance(o.error, SyncUnavailable) for o in outcomes):
            # a container went or restarted under us: look again and send again (it is idempotent)
            outcomes = self._pool.sync(svc.name, self.instances(svc.name, fresh=True), payload)
        # remembered even where it failed: the next container of this image gets it by replay
        thens: set[object] = {s.rule.then for s in syncs if s.rule.then != "none"}
        self._replay.record(svc.name, batch, thens)
        ok = self._report(svc.name, outcomes, payload, first_seen, replay=False)
        self._after(svc.name, [o.instance for o in outcomes if o.ack], thens)
        return ok or self.can_sync(svc.name)

    def replay(self, svc: Service, instances: Sequence[Instance]) -> None:
        """Everything synced since the image was built, into containers that did not get it."""
        memory = self._replay.batch(svc.name, svc.context)
        if memory is None or not len(memory) or not instances:
            return
        payload = encode(memory)
        outcomes = self._pool.sync(svc.name, instances, payload)
        self._report(svc.name, outcomes, payload, time.monotonic(), replay=True)
        if "restart" in self._replay.thens(svc.name):
            self._after(svc.name, [o.instance for o in outcomes if o.ack], {"restart"})

    def warm(self, svc: Service, instances: Sequence[Instance]) -> None:
        """Open the channels before the first edit; an image that cannot run the agent is said
        here."""
        if not svc.sync or not instances:
            return
        for o in self._pool.warm(svc.name, instances):
            if isinstance(o.error, SyncUnavailable):
                self._cannot(svc.name, o.error)

    def close(self) -> None:
        self._pool.close()

    def _report(
        self,
        service: str,
        outcomes: Sequence[Outcome],
        payload: Payload,
        first_seen: float,
        *,
        replay: bool,
    ) -> bool:
        ok = True
        for o in outcomes:
            if o.ack is not None and o.ack.warning:
                self._emit(WarningEvent(o.ack.warning, service))
            if o.ack is not None:
                self._emit(
                    SyncDone(
                        service=service,
                        container=o.instance.name,
                        files=payload.files,
                        deleted=payload.deleted,
                        bytes=payload.content,
                        paths=list(payload.paths[:PATHS_SHOWN]),
                        ms=round((time.monotonic() - first_seen) * 1000, 2),
                        replay=replay,
                    )
                )
                continue
            ok = False
            if isinstance(o.error, SyncUnavailable):
                self._cannot(service, o.error)
            else:
                self._emit(Error(f"sync to {o.instance.name} failed: {o.error}", service))
        return ok

    def _after(self, service: str, instances: Sequence[Instance], thens: set[object]) -> None:
        """The rules' `then`: restart the process in place, or run a command, in each container."""
        for then in sorted(thens, key=str):
            for inst in instances:
                try:
                    if then == "restart":
                        self._runtime.restart_process(inst)
                        self._emit(Restarted(service=service, container=inst.name))
                    elif isinstance(then, tuple):
                        self._exec(service, inst, then)
                except DevloopError as exc:
                    self._emit(Error(f"after sync in {inst.name}: {exc}", service))

    def _exec(self, service: str, inst: Instance, argv: tuple[str, ...]) -> None:
        code, out = self._runtime.exec(inst, argv)
        if code != 0:
            tail = out.decode(errors="replace").strip()[-500:]
            self._emit(Error(f"after-sync command {' '.join(argv)} exited {code}: {tail}", service))

    def _cannot(self, service: str, error: SyncUnavailable) -> None:
        if service not in self._said:
            self._emit(WarningEvent(str(error), service))
            self._said.add(service)
        self._unavailable.add(service)
