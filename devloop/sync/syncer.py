"""Files into a service's running containers: planned syncs, replays, and what runs after them.

The session decides *what* to sync; the Syncer gets it into every container of
the service (one channel each, in parallel), remembers it for replay into
containers that come later, runs the rule's `then`, and reports each step.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from devloop.errors import DevloopError
from devloop.model.events import (
    PATHS_SHOWN,
    Emit,
    Error,
    Info,
    Restarted,
    SyncDone,
    WarningEvent,
)
from devloop.model.project import Service
from devloop.runtime.base import Instance, Runtime
from devloop.sync.channel import SyncUnavailable
from devloop.sync.payload import Batch, Payload, PlannedSync, batch_for_plan, encode, merge
from devloop.sync.pool import ChannelPool, Outcome
from devloop.sync.replay import Replay
from devloop.sync.settle import Settle


class Syncer:
    def __init__(self, runtime: Runtime, emit: Emit) -> None:
        self._runtime = runtime
        self._emit = emit
        self._pool = ChannelPool(runtime.open_stream)
        self._replay = Replay()
        self._dirty = Replay()  # what failed to sync (an error from the agent), per service
        self._settle = Settle()
        self._cache: dict[str, list[Instance]] = {}
        self._unavailable: set[str] = set()  # services whose image cannot run the agent
        self._said: set[str] = set()  # ... said once per session
        # services whose process was restarted in place since `restarted()` was last asked, with
        # the first change seen of the edit that did it (None: asked for by hand)
        self._restarted: dict[str, float | None] = {}

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
        self._dirty.reset(service)
        self._settle.forget(service)
        self._unavailable.discard(service)

    def sync(
        self,
        svc: Service,
        syncs: Iterable[PlannedSync],
        first_seen: float,
        planned: float | None = None,
        *,
        deployed: bool = True,
    ) -> bool:
        """Sync to every container of `svc`; False when it must be rebuilt instead.

        `first_seen` and `planned` (when the plan was made) are `time.monotonic()` values: the
        events give each stage of the edit in milliseconds from the first.
        `deployed`: the service ran; with no container running now (stopped, being replaced)
        the change is kept and replayed into the next one instead of rebuilding.
        """
        syncs = list(syncs)
        batch = batch_for_plan(svc, syncs)
        for w in batch.warnings:
            self._emit(WarningEvent(w, svc.name))
        if not len(batch):
            return True
        thens: set[object] = {s.rule.then for s in syncs if s.rule.then != "none"}
        instances = self.instances(svc.name)
        if not instances:
            if not deployed:
                self._emit(WarningEvent("no running container to sync to; rebuilding", svc.name))
                return False
            self._keep(svc.name, batch, thens)
            return True
        # what failed before goes again with this batch (this batch's version of a path wins)
        pending = self._dirty.batch(svc.name, svc.context)
        full = merge([pending, batch]) if pending is not None else batch
        payload = encode(full)
        for w in payload.warnings[len(full.warnings) :]:
            self._emit(WarningEvent(w, svc.name))
        outcomes = self._pool.sync(svc.name, instances, payload)
        if any(o.error and not isinstance(o.error, SyncUnavailable) for o in outcomes):
            # a container went or restarted under us: look again and send again (it is idempotent)
            instances = self.instances(svc.name, fresh=True)
            outcomes = self._pool.sync(svc.name, instances, payload)
        # remembered even where it failed: the next container of this image gets it by replay
        self._replay.record(svc.name, full, thens)
        if not instances:
            self._keep(svc.name, full, thens)
            return True
        self._settle.wrote(svc.name, _written(full, payload), full.deletes)
        failed = any(o.error and not isinstance(o.error, SyncUnavailable) for o in outcomes)
        if failed:
            self._dirty.record(svc.name, full, thens)  # sent again until it arrives
        else:
            self._dirty.reset(svc.name)
        ok = self._report(
            svc.name, outcomes, payload, first_seen, replay=False, planned=planned, retried=failed
        )
        acked = [o.instance for o in outcomes if o.ack]
        self._after(svc.name, acked, thens, first_seen)
        if "restart" in thens and acked:
            self._restarted[svc.name] = first_seen
        return ok or self.can_sync(svc.name)

    def settle_wait(self, longest: float) -> float:
        """How long the loop may wait for new work before `settle` has something to do."""
        return self._settle.wait(longest)

    def settle(self, services: Mapping[str, Service]) -> None:
        """Write again the files a burst wrote twice within a watcher's throttle (see
        devloop.sync.settle), once they have been left alone; no `then`, no event."""
        for name, adds in self._settle.due().items():
            svc = services.get(name)
            instances = self._cache.get(name)
            if svc is None or not instances or not self.can_sync(name):
                continue
            batch = Batch(adds=adds, deletes=(), root=str(svc.context))
            payload = encode(batch)
            if payload.empty:
                continue
            # a container that went or restarted meanwhile gets the files by replay
            self._pool.sync(name, instances, payload)
            self._settle.wrote(name, _written(batch, payload), again=True)

    def dirty(self) -> list[str]:
        """Services with changes whose sync failed (a read-only or full destination, a full
        scratch space): `resend` them."""
        return self._dirty.services()

    def resend(self, svc: Service) -> bool:
        """Send the changes whose sync failed again; True while some still fail (said once, when
        they first failed)."""
        pending = self._dirty.batch(svc.name, svc.context)
        if pending is None or not len(pending):
            return False
        instances = self.instances(svc.name, fresh=True)
        if not instances:
            return True  # replayed when a container runs again
        payload = encode(pending)
        outcomes = self._pool.sync(svc.name, instances, payload)
        if any(o.error for o in outcomes):
            return True
        thens = self._dirty.thens(svc.name)
        self._dirty.reset(svc.name)
        self._emit(
            Info(
                f"{payload.files + payload.deleted} change(s) that failed to sync earlier "
                "are now in the container",
                svc.name,
            )
        )
        self._report(svc.name, outcomes, payload, time.monotonic(), replay=False)
        self._after(svc.name, [o.instance for o in outcomes if o.ack], thens)
        return False

    def _keep(self, service: str, batch: Batch, thens: set[object]) -> None:
        """No container runs now: the change waits in the replay memory for the next one."""
        self._replay.record(service, batch, thens)
        self._emit(
            WarningEvent(
                f"no running container to sync {len(batch)} change(s) to: kept, and sent to "
                "the container when it runs again",
                service,
            )
        )

    def replay(self, svc: Service, instances: Sequence[Instance]) -> None:
        """Everything synced since the image was built, into containers that did not get it."""
        memory = self._replay.batch(svc.name, svc.context)
        if memory is None or not len(memory) or not instances:
            return
        payload = encode(memory)
        outcomes = self._pool.sync(svc.name, instances, payload)
        if any(o.error and not isinstance(o.error, SyncUnavailable) for o in outcomes):
            self._dirty.record(svc.name, memory, self._replay.thens(svc.name))
        self._report(svc.name, outcomes, payload, time.monotonic(), replay=True, retried=True)
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

    def restart(self, service: str) -> int:
        """Restart the process in every container of `service` (asked for by hand); how many."""
        instances = self.instances(service, fresh=True)
        self._after(service, instances, {"restart"})
        if instances:
            self._restarted[service] = None
        return len(instances)

    def restarted(self) -> dict[str, float | None]:
        """The services restarted in place since the last call (→ the edit's first change seen,
        or None for a restart asked for by hand); forgotten once returned."""
        out, self._restarted = self._restarted, {}
        return out

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
        planned: float | None = None,
        retried: bool = False,
    ) -> bool:
        ok = True
        for o in outcomes:
            if o.ack is not None and o.ack.warning:
                self._emit(WarningEvent(o.ack.warning, service))
            if o.ack is not None:
                ms = round((time.monotonic() - first_seen) * 1000, 2)
                self._emit(
                    SyncDone(
                        service=service,
                        container=o.instance.name,
                        files=payload.files,
                        deleted=payload.deleted,
                        bytes=payload.content,
                        paths=list(payload.paths[:PATHS_SHOWN]),
                        ms=ms,
                        replay=replay,
                        planned_ms=_since(first_seen, planned),
                        sent_ms=None if replay else round(max(0.0, ms - o.ack.ms), 2),
                    )
                )
                continue
            ok = False
            if isinstance(o.error, SyncUnavailable):
                self._cannot(service, o.error)
            else:
                again = "; sent again until it succeeds" if retried else ""
                self._emit(Error(f"sync to {o.instance.name} failed: {o.error}{again}", service))
        return ok

    def _after(
        self,
        service: str,
        instances: Sequence[Instance],
        thens: set[object],
        first_seen: float | None = None,
    ) -> None:
        """The rules' `then`: restart the process in place, or run a command, in each container."""
        for then in sorted(thens, key=str):
            if then == "restart":
                self._restart(service, instances, first_seen)
                continue
            if isinstance(then, tuple):
                self._exec_all(service, instances, then)

    def _restart(
        self, service: str, instances: Sequence[Instance], first_seen: float | None
    ) -> None:
        """Through the open channels, all containers at once; the runtime's way (an exec, or
        a container restart when unsupervised) where a channel cannot."""
        if not instances:
            return
        for inst, done in self._pool.restart(service, instances):
            try:
                if isinstance(done, DevloopError):
                    raise done
                if not done:
                    self._runtime.restart_process(inst)
            except DevloopError as exc:
                self._emit(Error(f"after sync in {inst.name}: {exc}", service))
                continue
            self._emit(
                Restarted(
                    service=service, container=inst.name, ms=_since(first_seen, time.monotonic())
                )
            )

    def _exec_all(self, service: str, instances: Sequence[Instance], argv: tuple[str, ...]) -> None:
        """The after-sync command in every container at once (an exec costs ~50 ms each)."""

        def run(inst: Instance) -> tuple[int, bytes] | DevloopError:
            try:
                return self._runtime.exec(inst, argv)
            except DevloopError as exc:
                return exc

        if len(instances) == 1:
            results = [run(instances[0])]
        else:
            with ThreadPoolExecutor(len(instances), thread_name_prefix="devloop-then") as pool:
                results = list(pool.map(run, instances))
        for inst, result in zip(instances, results, strict=True):
            if isinstance(result, DevloopError):
                self._emit(Error(f"after sync in {inst.name}: {result}", service))
                continue
            code, out = result
            if code != 0:
                tail = out.decode(errors="replace").strip()[-500:]
                self._emit(
                    Error(f"after-sync command {' '.join(argv)} exited {code}: {tail}", service)
                )

    def _cannot(self, service: str, error: SyncUnavailable) -> None:
        if service not in self._said:
            self._emit(WarningEvent(str(error), service))
            self._said.add(service)
        self._unavailable.add(service)


def _since(first_seen: float | None, then: float | None) -> float | None:
    """Milliseconds from the first change seen to `then` (None when either is unknown)."""
    if first_seen is None or then is None:
        return None
    return round((then - first_seen) * 1000, 2)


def _written(batch: Batch, payload: Payload) -> dict[str, str]:
    """The files the payload wrote (not those that vanished before it was read)."""
    names = set(payload.paths[: payload.files])
    return {t: local for t, local in batch.adds.items() if t in names}
