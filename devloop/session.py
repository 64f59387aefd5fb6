"""The dev loop: a steppable session that turns change batches into syncs, rebuilds and redeploys.

Threads only feed the work queue (the watcher, the runtime's instance watch);
all decisions and actions happen in `step()`, one coalesced unit of work at a
time, so a test can drive the loop step by step and it can never hang.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from devloop import config, plan, render, sync
from devloop.build import Builder
from devloop.changes import Change, ChangeBatch
from devloop.channel import SyncUnavailable
from devloop.channel_pool import ChannelPool
from devloop.errors import DevloopError
from devloop.events import (
    Changes,
    Deployed,
    Emit,
    Error,
    Info,
    Ready,
    Restarted,
    SyncDone,
    WarningEvent,
)
from devloop.project import Project
from devloop.replay import Replay
from devloop.runtime.base import Instance, Runtime
from devloop.watch import Watcher

WatcherFactory = Callable[[Project, Sequence[str], threading.Event], Iterable[ChangeBatch]]


@dataclass(frozen=True)
class InstancesChanged:
    """A container of `service` started, restarted or went away."""

    service: str


Work = ChangeBatch | InstancesChanged


@dataclass
class _ServiceState:
    ref: str = ""
    deployed: bool = False
    sync_unavailable: bool = False
    said_unavailable: bool = False  # "sync cannot work in this image" is said once per session
    generations: set[str] = field(default_factory=set)


class Session:
    """One `devloop dev` run over `services` (and what they require)."""

    def __init__(
        self,
        project: Project,
        services: Sequence[str],
        runtime: Runtime,
        builder_factory: Callable[[Project], Builder],
        emit: Emit,
        *,
        watcher_factory: WatcherFactory | None = None,
        ready_timeout: float = 120.0,
    ) -> None:
        self.project = project
        self.wanted = tuple(services)
        self.runtime = runtime
        self._builder_factory = builder_factory
        self._builder = builder_factory(project)
        self._emit = emit
        self._watcher_factory = watcher_factory or _default_watcher
        self._ready_timeout = ready_timeout
        self.stop = threading.Event()
        self._queue: queue.Queue[Work] = queue.Queue()
        self._interrupt = threading.Event()  # a new edit interrupts a wait for readiness
        self._pool = ChannelPool(runtime.open_stream)
        self._replay = Replay()
        self._state = {n: _ServiceState() for n in self.names}
        self._filters = plan.context_filters(project, self.wanted)
        self._threads: list[threading.Thread] = []
        self._watch_stop = threading.Event()
        self._urls: dict[str, list[str]] = {}
        self._cache: dict[str, list[Instance]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return self.project.closure(self.wanted)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Build, deploy and start watching. A failed first build is reported; the loop still starts."""
        self._start_watcher()
        self.runtime.watch_instances(self._instances_changed, self.stop)
        self.runtime.follow_logs(self._emit, self.stop)
        self._rebuild(self.names, initial=True)

    def _instances_changed(self, service: str) -> None:
        """From the runtime's watch thread: forget the cached list now, replay in the loop."""
        self._cache.pop(service, None)
        self._queue.put(InstancesChanged(service))

    def step(self, timeout: float = 0.25) -> bool:
        """Handle the queued work (coalesced); False once the session is stopped."""
        if self.stop.is_set():
            return False
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return not self.stop.is_set()
        self._interrupt.clear()
        batches, changed = _coalesce([first, *_drain(self._queue)])
        if batches:
            self._on_changes(batches)
        for service in changed:
            self._on_instances(service)
        return not self.stop.is_set()

    def run(self) -> None:
        while self.step():
            pass

    def close(self, *, keep: bool = False) -> None:
        self.stop.set()
        self._watch_stop.set()
        self._pool.close()
        for t in self._threads:
            t.join(timeout=5)
        if keep:
            self.runtime.close()
        else:
            self.runtime.teardown()

    # -- the watcher feeds the queue --------------------------------------

    def _start_watcher(self) -> None:
        self._watch_stop = threading.Event()
        stop = self._watch_stop
        watcher = self._watcher_factory(self.project, self.wanted, stop)
        if isinstance(watcher, Watcher):
            self._emit(watcher.event())

        def feed() -> None:
            try:
                for batch in watcher:
                    self._queue.put(batch)
                    self._interrupt.set()
            except DevloopError as exc:
                self._emit(Error(f"watching stopped: {exc}"))
            finally:
                if stop is self._watch_stop and not self.stop.is_set():
                    self._emit(WarningEvent("the file watcher stopped"))

        t = threading.Thread(target=feed, name="devloop-watch", daemon=True)
        t.start()
        self._threads.append(t)

    # -- changes -----------------------------------------------------------

    def _on_changes(self, batch: ChangeBatch) -> None:
        self._emit(Changes(files=len(batch), paths=[_shown(self.project, c) for c in list(batch)[:5]]))
        decided = plan.plan(self.project, self.wanted, batch, self._filters)
        rebuild: list[str] = []
        redeploy: list[str] = []
        if decided.reload:
            replanned = self._reload()
            if replanned is None:
                return
            rebuild += [s.name for s in replanned.services if s.rebuild]
            redeploy += [s.name for s in replanned.services if s.redeploy]
            decided = plan.plan(self.project, self.wanted, batch, self._filters)  # the rest of the batch
        if any(c.path.name == ".dockerignore" for c in batch):
            self._filters = plan.context_filters(self.project, self.wanted)
            self._restart_watcher()
        rebuild += [s.name for s in decided.services if s.rebuild]
        redeploy += [s.name for s in decided.services if s.redeploy]
        for sp in decided.services:
            if sp.syncs and not sp.rebuild and not self._synced(sp, batch.first_seen):
                rebuild.append(sp.name)
        fallback = {s.name: s.rebuild.superseded for s in decided.services if s.rebuild and s.rebuild.superseded}
        if rebuild:
            self._rebuild(rebuild, redeploy=redeploy, fallback=fallback, first_seen=batch.first_seen)
        elif redeploy:
            self._deploy(list(dict.fromkeys(redeploy)))

    def _reload(self) -> plan.Plan | None:
        """Load devloop.yaml again; what differs, or None when the new file is wrong."""
        try:
            new = config.load(self.project.root, self.project.profiles)
        except DevloopError as exc:
            self._emit(Error(f"devloop.yaml not reloaded, the running version stays: {exc}"))
            return None
        unknown = [n for n in self.wanted if n not in new.services]
        if unknown:
            self._emit(Error(f"devloop.yaml not reloaded: it no longer defines {', '.join(unknown)}"))
            return None
        decided = plan.replan(self.project, new, self.wanted)
        self.project = new
        self._builder = self._builder_factory(new)
        self._filters = plan.context_filters(new, self.wanted)
        for n in self.names:
            self._state.setdefault(n, _ServiceState())
        self._emit(Info("devloop.yaml reloaded"))
        self._restart_watcher()
        return decided

    def _restart_watcher(self) -> None:
        """The roots or ignore rules changed: watch anew (the old watcher ends on its own)."""
        self._watch_stop.set()
        self._start_watcher()

    # -- sync --------------------------------------------------------------

    def _synced(self, sp: plan.ServicePlan, first_seen: float) -> bool:
        return not self._state[sp.name].sync_unavailable and self._sync(sp.name, sp.syncs, first_seen)

    def _sync(self, service: str, syncs: Iterable[plan.Sync], first_seen: float) -> bool:
        """Sync to every container of `service`; False when it must be rebuilt instead."""
        svc = self.project.services[service]
        syncs = list(syncs)
        batch = sync.batch_for_plan(svc, syncs)
        for w in batch.warnings:
            self._emit(WarningEvent(w, service))
        if not len(batch):
            return True
        instances = self._instances(service)
        if not instances:
            self._emit(WarningEvent("no running container to sync to; rebuilding", service))
            return False
        payload = sync.encode(batch)
        for w in payload.warnings[len(batch.warnings):]:
            self._emit(WarningEvent(w, service))
        outcomes = self._pool.sync(service, instances, payload)
        if any(o.error and not isinstance(o.error, SyncUnavailable) for o in outcomes):
            # a container went or restarted under us: look again and send again (it is idempotent)
            outcomes = self._pool.sync(service, self._instances(service, fresh=True), payload)
        # remembered even where it failed: the next container of this image gets it by replay
        self._replay.record(service, batch, _thens(syncs))
        ok = self._report(service, outcomes, payload, first_seen, replay=False)
        self._after_sync(service, [o.instance for o in outcomes if o.ack], _thens(syncs))
        return ok or not self._state[service].sync_unavailable

    def _instances(self, service: str, *, fresh: bool = False) -> list[Instance]:
        """The service's containers, cached between changes to them (listing costs ~5 ms)."""
        cached = self._cache.get(service)
        if fresh or cached is None:
            cached = self._cache[service] = self.runtime.instances(service)
        return cached

    def _report(self, service: str, outcomes: Sequence[object], payload: sync.Payload,
                first_seen: float, *, replay: bool) -> bool:
        from devloop.channel_pool import Outcome

        ok = True
        for o in outcomes:
            assert isinstance(o, Outcome)
            if o.ack is not None:
                self._emit(SyncDone(service=service, container=o.instance.name, files=payload.files,
                                    deleted=payload.deleted, bytes=payload.size,
                                    ms=round((time.monotonic() - first_seen) * 1000, 2), replay=replay))
            elif isinstance(o.error, SyncUnavailable):
                self._unavailable(service, o.error)
                ok = False
            else:
                self._emit(Error(f"sync to {o.instance.name} failed: {o.error}", service))
                ok = False
        return ok

    def _after_sync(self, service: str, instances: Sequence[Instance], thens: set[object]) -> None:
        for then in sorted(thens, key=str):
            for inst in instances:
                try:
                    if then == "restart":
                        self.runtime.restart_process(inst)
                        self._emit(Restarted(service=service, container=inst.name))
                    elif isinstance(then, tuple):
                        code, out = self.runtime.exec(inst, then)
                        if code != 0:
                            tail = out.decode(errors="replace").strip()[-500:]
                            self._emit(Error(f"after-sync command {' '.join(then)} exited {code}: {tail}", service))
                except DevloopError as exc:
                    self._emit(Error(f"after sync in {inst.name}: {exc}", service))

    # -- containers that came, restarted or went ---------------------------

    def _on_instances(self, service: str) -> None:
        """Replay synced files into containers we have not seen yet, then report ready."""
        state = self._state.get(service)
        if state is None or not state.deployed:
            return
        fresh = [i for i in self._instances(service, fresh=True) if i.generation not in state.generations]
        if fresh:
            self._replay_into(service, fresh)
            self._emit(Ready(service=service, urls=self._urls.get(service, [])))

    def _replay_into(self, service: str, instances: Sequence[Instance]) -> None:
        state = self._state[service]
        memory = self._replay.batch(service, self.project.services[service].context)
        if memory is not None and len(memory):
            payload = sync.encode(memory)
            outcomes = self._pool.sync(service, instances, payload)
            self._report(service, outcomes, payload, time.monotonic(), replay=True)
            if "restart" in self._replay.thens(service):
                self._after_sync(service, [o.instance for o in outcomes if o.ack], {"restart"})
        current = self._instances(service, fresh=True)
        state.generations.update(i.generation for i in current)
        self._warm(service, current)

    def _warm(self, service: str, instances: Sequence[Instance]) -> None:
        """Open the sync channels now; an image that cannot run the agent is reported once, here."""
        if not any(self.project.services[service].sync) or not instances:
            return
        for o in self._pool.warm(service, instances):
            if isinstance(o.error, SyncUnavailable):
                self._unavailable(service, o.error)

    def _unavailable(self, service: str, error: SyncUnavailable) -> None:
        state = self._state[service]
        if not state.said_unavailable:
            self._emit(WarningEvent(str(error), service))
        state.said_unavailable = state.sync_unavailable = True

    # -- build and deploy --------------------------------------------------

    def _rebuild(self, services: Iterable[str], *, initial: bool = False, redeploy: Iterable[str] = (),
                 fallback: Mapping[str, tuple[plan.Sync, ...]] | None = None, first_seen: float = 0.0) -> None:
        targets = self.project.closure(services)
        try:
            built = self._builder.build(targets)
        except DevloopError as exc:
            what = "the first build failed; fix it and save" if initial else "build failed; the running version stays"
            self._emit(Error(f"{what}: {exc}"))
            for name, syncs in (fallback or {}).items():
                if self._state[name].deployed and not self._state[name].sync_unavailable:
                    self._sync(name, syncs, first_seen)  # the edit still reaches the running version
            return
        changed = set(redeploy)
        for name, image in built.items():
            state = self._state.get(name)
            if state is None or state.ref == image.ref:
                continue  # same inputs, same tag: what runs is already this image
            if state.ref:
                self._replay.reset(name)  # the new image holds every synced file
            state.ref, state.sync_unavailable = image.ref, False
            changed.add(name)
        if initial:
            self._deploy(list(self.names))
        elif changed:
            self._deploy([n for n in self.names if n in changed])

    def _deploy(self, services: Sequence[str]) -> None:
        refs = {n: s.ref for n, s in self._state.items() if s.ref}
        missing = [n for n in self.names if n not in refs]
        if missing:
            self._emit(Error(f"not deployed: no image yet for {', '.join(missing)}"))
            return
        try:
            manifests = render.render(self.project, refs, self.names)
            self.runtime.deploy(manifests, self.names)
        except DevloopError as exc:
            self._emit(Error(f"deploy failed; the running version stays: {exc}"))
            return
        for n in services:
            objects = sum(1 for m in manifests if m.service == n)
            self._emit(Deployed(service=n, image=refs[n], objects=objects))
        ready = True
        try:
            self.runtime.wait_ready(services, self._ready_timeout, self._interrupt)
        except DevloopError as exc:
            self._emit(Error(str(exc)))
            ready = False
        # a new edit interrupts the wait: its step comes next, and containers that come up
        # later are replayed into and reported ready as they start (`_on_instances`)
        ready = ready and not self._interrupt.is_set()
        if not self._urls:
            self._urls = self.runtime.forward_ports(self._emit, self.stop)
        for n in services:
            self._state[n].deployed = True
            fresh = [i for i in self._instances(n, fresh=True) if i.generation not in self._state[n].generations]
            self._replay_into(n, fresh)
            if ready:
                self._emit(Ready(service=n, urls=self._urls.get(n, [])))


def _default_watcher(project: Project, services: Sequence[str], stop: threading.Event) -> Iterable[ChangeBatch]:
    return Watcher(project, services, stop)


def _drain(q: queue.Queue[Work]) -> list[Work]:
    out: list[Work] = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def _coalesce(items: Sequence[Work]) -> tuple[ChangeBatch | None, list[str]]:
    """Queued batches become one (the first change's time kept); instance changes deduplicated."""
    batches = [i for i in items if isinstance(i, ChangeBatch)]
    services = list(dict.fromkeys(i.service for i in items if isinstance(i, InstancesChanged)))
    if not batches:
        return None, services
    latest: dict[object, Change] = {}
    for b in batches:
        for c in b:
            latest[c.path] = c
    return ChangeBatch(tuple(latest.values()), min(b.first_seen for b in batches)), services


def _thens(syncs: Iterable[plan.Sync]) -> set[object]:
    return {s.rule.then for s in syncs if s.rule.then != "none"}


def _shown(project: Project, change: Change) -> str:
    try:
        return change.path.relative_to(project.root).as_posix()
    except ValueError:
        return str(change.path)

