"""The dev loop: a steppable session that turns change batches into syncs, rebuilds and redeploys.

Threads only feed the work queue (the watcher, the runtime's instance watch);
all decisions and actions happen in `step()`, one coalesced unit of work at a
time, so a test can drive the loop step by step and it can never hang.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from devloop import config
from devloop.build.builder import Builder
from devloop.build.inputs import InputSet, cached_inputs
from devloop.errors import DeployError, DevloopError
from devloop.files.ignore import PathRules
from devloop.loop import plan
from devloop.model.changes import Change, ChangeBatch
from devloop.model.events import (
    Changes,
    Deployed,
    Emit,
    Error,
    Info,
    Ready,
    WarningEvent,
)
from devloop.model.project import Project
from devloop.render.templates import render
from devloop.runtime.base import Instance, Runtime
from devloop.sync.syncer import Syncer
from devloop.watch.choice import WatcherFactory
from devloop.watch.choice import watcher_factory as watcher_factory_for

# Backoff of work that failed on an error (an API server that answered 5xx, a dropped
# connection): 0.5 s doubling to 15 s, as Tilt's port-forward reconnects.
RETRY_MIN = 0.5
RETRY_MAX = 15.0


@dataclass(frozen=True)
class InstancesChanged:
    """A container of `service` started, restarted or went away."""

    service: str


Work = ChangeBatch | InstancesChanged


@dataclass
class _ServiceState:
    ref: str = ""
    deployed: bool = False
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
        self._watcher_factory = watcher_factory or watcher_factory_for("auto")
        self._ready_timeout = ready_timeout
        self.stop = threading.Event()
        self._queue: queue.Queue[Work] = queue.Queue()
        self._retry_in = 0.0  # the current backoff after a failed step; 0 after a good one
        self._interrupt = threading.Event()  # a new edit interrupts a wait for readiness
        self._syncer = Syncer(runtime, emit)
        self._state = {n: _ServiceState() for n in self.names}
        self._rules = PathRules(project, self.wanted)
        self._threads: list[threading.Thread] = []
        self._watch_stop = threading.Event()
        self._urls: dict[str, list[str]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return self.project.closure(self.wanted)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Build, deploy and start watching. A failed first build is reported; the loop still
        starts."""
        self._start_watcher()
        self.runtime.watch_instances(self._instances_changed, self.stop)
        self.runtime.follow_logs(self._emit, self.stop)
        self._rebuild(self.names, initial=True)

    def _instances_changed(self, service: str) -> None:
        """From the runtime's watch thread: forget the cached list now, replay in the loop."""
        self._syncer.forget(service)
        self._queue.put(InstancesChanged(service))

    def step(self, timeout: float = 0.25) -> bool:
        """Handle the queued work (coalesced); False once the session is stopped."""
        if self.stop.is_set():
            return False
        try:
            first = self._queue.get(timeout=self._syncer.settle_wait(timeout))
        except queue.Empty:
            self._settle()
            return not self.stop.is_set()
        self._interrupt.clear()
        work = [first, *_drain(self._queue)]
        batches, changed = _coalesce(work)
        try:
            if batches:
                self._on_changes(batches)
            for service in changed:
                self._on_instances(service)
        except DevloopError as exc:
            # an API server blip, a dropped connection: say so and try the same work again
            # later; only Ctrl-C ends a dev session
            self._retry_in = min(self._retry_in * 2, RETRY_MAX) if self._retry_in else RETRY_MIN
            self._emit(Error(f"{exc} (retrying in {self._retry_in:.1f} s)"))
            self._requeue(work, self._retry_in)
        else:
            self._retry_in = 0.0
        self._settle()
        return not self.stop.is_set()

    def _settle(self) -> None:
        try:
            self._syncer.settle(self.project.services)
        except DevloopError as exc:  # a file that cannot be read: the next edit syncs it
            self._emit(Error(str(exc)))

    def _requeue(self, work: Sequence[Work], delay: float) -> None:
        def put_back() -> None:
            if not self.stop.wait(delay):
                for item in work:
                    self._queue.put(item)

        threading.Thread(target=put_back, name="devloop-retry", daemon=True).start()

    def run(self) -> None:
        while self.step():
            pass

    def close(self, *, keep: bool = False) -> None:
        self.stop.set()
        self._watch_stop.set()
        self._syncer.close()
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
        event = getattr(watcher, "event", None)  # a scripted change source has none
        if callable(event):
            self._emit(event())

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

    def _inputs(self) -> dict[str, InputSet]:
        """What each service's Dockerfile can reach (parsed again only when it changes)."""
        return {
            n: cached_inputs(self.project.services[n])
            for n in self.project.closure(self.wanted)
            if n in self.project.services
        }

    def _on_changes(self, batch: ChangeBatch) -> None:
        self._emit(
            Changes(files=len(batch), paths=[_shown(self.project, c) for c in list(batch)[:5]])
        )
        decided = plan.plan(self.project, self.wanted, batch, self._rules, self._inputs())
        rebuild: list[str] = []
        redeploy: list[str] = []
        if decided.reload:
            replanned = self._reload()
            if replanned is None:
                return
            rebuild += [s.name for s in replanned.services if s.rebuild]
            redeploy += [s.name for s in replanned.services if s.redeploy]
            decided = plan.plan(
                self.project, self.wanted, batch, self._rules, self._inputs()
            )  # the rest of the batch
        if any(c.path.name == ".dockerignore" for c in batch):
            self._rules = PathRules(self.project, self.wanted)
            self._restart_watcher()
        rebuild += [s.name for s in decided.services if s.rebuild]
        redeploy += [s.name for s in decided.services if s.redeploy]
        for sp in decided.services:
            if sp.syncs and not sp.rebuild and not self._synced(sp, batch.first_seen):
                rebuild.append(sp.name)
        fallback = {
            s.name: s.rebuild.superseded
            for s in decided.services
            if s.rebuild and s.rebuild.superseded
        }
        if rebuild:
            self._rebuild(
                rebuild, redeploy=redeploy, fallback=fallback, first_seen=batch.first_seen
            )
        elif redeploy:
            self._deploy(list(dict.fromkeys(redeploy)))

    def _reload(self) -> plan.Plan | None:
        """Load devloop.yaml again; what differs, or None when the new file is wrong."""
        try:
            new = config.load(self.project.config_path, self.project.profiles)
        except DevloopError as exc:
            self._emit(Error(f"devloop.yaml not reloaded, the running version stays: {exc}"))
            return None
        unknown = [n for n in self.wanted if n not in new.services]
        if unknown:
            self._emit(
                Error(f"devloop.yaml not reloaded: it no longer defines {', '.join(unknown)}")
            )
            return None
        decided = plan.replan(self.project, new, self.wanted)
        self.project = new
        self._builder = self._builder_factory(new)
        self._rules = PathRules(new, self.wanted)
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
        return self._syncer.can_sync(sp.name) and self._syncer.sync(
            self.project.services[sp.name], sp.syncs, first_seen
        )

    # -- containers that came, restarted or went ---------------------------

    def _on_instances(self, service: str) -> None:
        """Replay synced files into containers we have not seen yet, then report ready."""
        state = self._state.get(service)
        if state is None or not state.deployed:
            return
        fresh = [
            i
            for i in self._syncer.instances(service, fresh=True)
            if i.generation not in state.generations
        ]
        if fresh:
            self._replay_into(service, fresh)
            self._emit(Ready(service=service, urls=self._urls.get(service, [])))

    def _replay_into(self, service: str, instances: Sequence[Instance]) -> None:
        svc = self.project.services[service]
        self._syncer.replay(svc, instances)
        current = self._syncer.instances(service, fresh=True)
        self._state[service].generations.update(i.generation for i in current)
        self._syncer.warm(svc, current)

    # -- build and deploy --------------------------------------------------

    def _rebuild(
        self,
        services: Iterable[str],
        *,
        initial: bool = False,
        redeploy: Iterable[str] = (),
        fallback: Mapping[str, tuple[plan.Sync, ...]] | None = None,
        first_seen: float = 0.0,
    ) -> None:
        targets = self.project.closure(services)
        try:
            built = self._builder.build(targets)
        except DevloopError as exc:
            what = (
                "the first build failed; fix it and save"
                if initial
                else "build failed; the running version stays"
            )
            self._emit(Error(f"{what}: {exc}"))
            for name, syncs in (fallback or {}).items():
                if self._state[name].deployed and self._syncer.can_sync(name):
                    # the edit still reaches the running version
                    self._syncer.sync(self.project.services[name], syncs, first_seen)
            return
        changed = set(redeploy)
        for name, image in built.items():
            state = self._state.get(name)
            if state is None or state.ref == image.ref:
                continue  # same inputs, same tag: what runs is already this image
            if state.ref:
                self._syncer.new_image(name)
            state.ref = image.ref
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
            manifests = render(self.project, refs, self.names)
            self.runtime.deploy(manifests, self.names)
        except DevloopError as exc:
            service = exc.service if isinstance(exc, DeployError) else None
            # on a first deploy nothing runs yet: "the running version stays" would mislead
            stays = (
                "; the running version stays"
                if any(st.deployed for st in self._state.values())
                else ""
            )
            self._emit(Error(f"deploy failed{stays}: {exc}", service=service))
            return
        for n in services:
            objects = sum(1 for m in manifests if m.service == n)
            if objects:  # a build-only service (an image others use) is neither deployed nor ready
                self._emit(Deployed(service=n, image=refs[n], objects=objects))
        self._builder.prune({n: refs[n] for n in services})
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
            fresh = [
                i
                for i in self._syncer.instances(n, fresh=True)
                if i.generation not in self._state[n].generations
            ]
            self._replay_into(n, fresh)
            if ready and any(m.service == n for m in manifests):
                self._emit(Ready(service=n, urls=self._urls.get(n, [])))


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


def _shown(project: Project, change: Change) -> str:
    try:
        return change.path.relative_to(project.root).as_posix()
    except ValueError:
        return str(change.path)
