"""The dev loop: a steppable session that turns change batches into syncs, rebuilds and redeploys.

Threads only feed the work queue (the watcher, the runtime's instance watch);
all decisions and actions happen in `step()`, one coalesced unit of work at a
time, so a test can drive the loop step by step and it can never hang.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devloop import config
from devloop.build.builder import Builder
from devloop.build.inputs import InputSet, cached_inputs
from devloop.errors import DeployError, DevloopError
from devloop.files.ignore import PathRules
from devloop.loop import plan, steer
from devloop.loop.steer import Request
from devloop.model.changes import Change, ChangeBatch
from devloop.model.events import (
    Changes,
    Deployed,
    Emit,
    Error,
    Info,
    Paused,
    Pending,
    Ready,
    Requested,
    Resumed,
    WarningEvent,
)
from devloop.model.project import Project, Trigger
from devloop.render.templates import render
from devloop.runtime.base import Instance, Runtime
from devloop.sync.syncer import Syncer
from devloop.watch.choice import WatcherFactory
from devloop.watch.choice import watcher_factory as watcher_factory_for

# Backoff of work that failed on an error (an API server that answered 5xx, a dropped
# connection): 0.5 s doubling to 15 s, as Tilt's port-forward reconnects.
RETRY_MIN = 0.5
RETRY_MAX = 15.0
# After an in-place restart (a sync's `then: restart`), how long the loop waits for the service to
# serve again before it says so; a new edit cuts the wait short.
RESTART_READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class InstancesChanged:
    """A container of `service` started, restarted or went away."""

    service: str


@dataclass(frozen=True)
class Resend:
    """Time to send `service`'s failed syncs again."""

    service: str


Work = ChangeBatch | InstancesChanged | Request | Resend


@dataclass
class _ServiceState:
    ref: str = ""
    deployed: bool = False
    generations: set[str] = field(default_factory=set)
    stamp: str = ""  # set by a rebuild asked for by hand: its containers are made anew
    held: dict[Path, Change] = field(default_factory=dict)  # manual trigger: changes that wait
    held_since: float = 0.0  # when the first of them was seen
    held_because: bool = False  # ... or a required image was rebuilt meanwhile
    failing: bool = False  # its wait for ready failed: a (re)start is not ready until checked
    down: bool = False  # deployed, but no container runs (said once)


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
        trigger: Trigger | None = None,
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
        self._forward_stop = threading.Event()  # ends the port-forwards: `ports:` changed, or close
        self._urls: dict[str, list[str]] = {}
        self._trigger = trigger  # overrides each service's `trigger:` when set
        self._paused: list[ChangeBatch] | None = None  # the edits kept while paused
        self._resend_in: dict[str, float] = {}  # service → backoff of its failed syncs
        self._resend_due: set[str] = set()  # ... with a Resend on its way

    @property
    def names(self) -> tuple[str, ...]:
        return self.project.closure(self.wanted)

    def trigger_of(self, service: str) -> Trigger:
        return self._trigger or self.project.services[service].trigger

    @property
    def paused(self) -> bool:
        return self._paused is not None

    # -- steering (any thread) -----------------------------------------------

    def request(self, command: str, service: str | None = None) -> None:
        """Queue a steering command; the loop carries it out in order with the changes.

        Thread-safe. `command`: rebuild (build even when the tag exists, and make the
        containers anew), restart (the process, same container), trigger (the changes that
        wait in manual mode), pause, resume (the edits made meanwhile as one batch). `service`
        None means every one. Raises steer.RequestError for an unknown command or service.
        """
        req = steer.check(command, service, self.names)
        self._queue.put(req)
        if req.command in ("rebuild", "trigger"):
            self._interrupt.set()  # no point in waiting for the readiness of what gets replaced

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Build, deploy and start watching. A failed first build is reported; the loop still
        starts."""
        self._start_watcher()
        self.runtime.watch_instances(self._instances_changed, self.stop)
        self.runtime.follow_logs(self._emit, self.stop)
        self.runtime.watch_crashes(self._emit, self.stop)
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
        units = _coalesce([first, *_drain(self._queue)])
        done = 0
        try:
            for unit in units:
                self._do(unit)
                done += 1
        except DevloopError as exc:
            # an API server blip, a dropped connection: say so and try the same work again
            # later; only Ctrl-C ends a dev session
            self._retry_in = min(self._retry_in * 2, RETRY_MAX) if self._retry_in else RETRY_MIN
            self._emit(Error(f"{exc} (retrying in {self._retry_in:.1f} s)"))
            self._requeue(units[done:], self._retry_in)
        else:
            self._retry_in = 0.0
        self._schedule_resends()
        self._settle()
        return not self.stop.is_set()

    def _do(self, unit: Work) -> None:
        if isinstance(unit, Resend):
            self._resend(unit.service)
        elif isinstance(unit, Request):
            self._on_request(unit)
        elif isinstance(unit, InstancesChanged):
            self._on_instances(unit.service)
        elif self._paused is not None:
            self._paused.append(unit)
            self._emit(Paused(files=len(_merged(self._paused))))
        else:
            self._on_changes(unit)
        self._ready_after_restart()

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
        self._forward_stop.set()
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
            Changes(
                files=len(batch),
                paths=[_shown(self.project, c) for c in list(batch)[:5]],
                ms=round((time.monotonic() - batch.first_seen) * 1000, 2)
                if batch.first_seen
                else None,
            )
        )
        decided = plan.plan(self.project, self.wanted, batch, self._rules, self._inputs())
        rebuild: list[str] = []
        redeploy: list[str] = []
        held = [sp for sp in decided.services if self.trigger_of(sp.name) == "manual"]
        if held:
            self._hold(batch, held)
            decided = plan.Plan(
                services=tuple(sp for sp in decided.services if sp not in held),
                reload=decided.reload,
                ignored=decided.ignored,
            )
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
        self._act(decided, batch, rebuild, redeploy)

    def _act(
        self,
        decided: plan.Plan,
        batch: ChangeBatch,
        rebuild: list[str],
        redeploy: list[str],
    ) -> None:
        rebuild += [s.name for s in decided.services if s.rebuild]
        redeploy += [s.name for s in decided.services if s.redeploy]
        planned = time.monotonic()
        for sp in decided.services:
            if sp.syncs and not sp.rebuild and not self._synced(sp, batch.first_seen, planned):
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

    # -- steering ------------------------------------------------------------

    def _on_request(self, req: Request) -> None:
        self._emit(Requested(command=req.command, service=req.service))
        names = [req.service] if req.service else list(self.names)
        if req.command == "rebuild":
            if self._rebuild([req.service] if req.service else self.wanted, force=names):
                for n in names:
                    self._release(n)  # the new image holds what waited
        elif req.command == "restart":
            restarted = sum(self._syncer.restart(n) for n in names if self._state[n].deployed)
            if not restarted:
                self._emit(WarningEvent("no running container to restart", req.service))
        elif req.command == "trigger":
            self._trigger_held(names)
        elif req.command == "pause":
            if self._paused is None:
                self._paused = []
            self._emit(Paused(files=len(_merged(self._paused))))
        elif req.command == "resume":
            kept, self._paused = self._paused or [], None
            batch = _merged(kept)
            self._emit(Resumed(files=len(batch)))
            if len(batch):
                self._on_changes(batch)

    def _hold(self, batch: ChangeBatch, held: Sequence[plan.ServicePlan]) -> None:
        """Manual trigger: keep what changed for each of these services until a trigger."""
        for sp in held:
            state = self._state[sp.name]
            paths = steer.touched(self.project.services[sp.name], sp)
            if not state.held and not state.held_because:
                state.held_since = batch.first_seen
            state.held.update({c.path: c for c in batch if c.path in paths})
            state.held_because |= bool(sp.rebuild and sp.rebuild.because_of)
            self._emit(
                Pending(
                    service=sp.name,
                    files=len(state.held),
                    paths=[_shown(self.project, c) for c in list(state.held.values())[:5]],
                )
            )

    def _release(self, service: str) -> tuple[list[Change], bool]:
        """The changes that waited for `service` (forgotten here), and whether a required image
        changed meanwhile."""
        state = self._state[service]
        held, because = list(state.held.values()), state.held_because
        if held or because:
            state.held, state.held_because = {}, False
            self._emit(Pending(service=service, files=0))
        return held, because

    def _trigger_held(self, names: Sequence[str]) -> None:
        waiting = [n for n in names if self._state[n].held or self._state[n].held_because]
        if not waiting:
            self._emit(Info("no changes wait for a trigger", names[0] if len(names) == 1 else None))
            return
        first_seen = min(self._state[n].held_since for n in waiting)
        changes: dict[Path, Change] = {}
        because: list[str] = []
        for n in waiting:
            held, by_requirement = self._release(n)
            changes.update({c.path: c for c in held})
            if by_requirement:
                because.append(n)
        batch = ChangeBatch(tuple(changes.values()), first_seen)
        decided = plan.plan(self.project, self.wanted, batch, self._rules, self._inputs())
        mine = tuple(sp for sp in decided.services if sp.name in waiting)
        self._act(plan.Plan(services=mine), batch, list(because), [])

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
        ports_changed = any(
            self.project.services[n].ports != new.services[n].ports
            for n in self.names
            if n in self.project.services and n in new.services
        )
        self.project = new
        self.runtime.project = new  # it publishes / forwards the ports of the project it has
        if ports_changed:  # the next deploy publishes or forwards the new ones
            self._forward_stop.set()
            self._forward_stop = threading.Event()
            self._urls = {}
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

    def _synced(self, sp: plan.ServicePlan, first_seen: float, planned: float) -> bool:
        return self._syncer.can_sync(sp.name) and self._syncer.sync(
            self.project.services[sp.name],
            sp.syncs,
            first_seen,
            planned,
            deployed=self._state[sp.name].deployed,
        )

    def _resend(self, service: str) -> None:
        self._resend_due.discard(service)
        if service in self.project.services:
            self._syncer.resend(self.project.services[service])

    def _schedule_resends(self) -> None:
        """Failed syncs go again with backoff (and with every sync before that), until they
        arrive: a destination made writable again, space freed."""
        dirty = set(self._syncer.dirty())
        for service in set(self._resend_in) - dirty:
            del self._resend_in[service]  # arrived: the next failure starts the backoff anew
        for service in sorted(dirty - self._resend_due):
            delay = self._resend_in.get(service)
            delay = min(delay * 2, RETRY_MAX) if delay else RETRY_MIN
            self._resend_in[service] = delay
            self._resend_due.add(service)
            self._requeue([Resend(service)], delay)

    # -- containers that came, restarted or went ---------------------------

    def _on_instances(self, service: str) -> None:
        """Replay synced files into containers we have not seen yet, then report ready."""
        state = self._state.get(service)
        if state is None or not state.deployed:
            return
        current = self._syncer.instances(service, fresh=True)
        if not current:
            if not state.down:
                state.down = True
                self._emit(
                    WarningEvent(
                        "no container of it is running (it stopped or was removed): it is "
                        "started again, then given the files synced so far and the edits made "
                        "meanwhile",
                        service,
                    )
                )
            return
        fresh = [i for i in current if i.generation not in state.generations]
        if fresh:
            if state.down:
                self._emit(Info("running again: replaying the synced files", service))
            state.down = False
            self._replay_into(service, fresh)
            if state.failing and not self._recovered(service):
                return  # a crash loop restarting: diagnosed once already, never "ready"
            self._emit(self._ready(service))

    def _still_running(self, service: str | None) -> bool:
        names = [service] if service else [n for n, st in self._state.items() if st.deployed]
        try:
            return any(self._state[n].deployed and self.runtime.instances(n) for n in names)
        except DevloopError:
            return False

    def _recovered(self, service: str) -> bool:
        """Whether a service whose last wait for ready failed is ready now."""
        try:
            self.runtime.wait_ready([service], self._ready_timeout, self._interrupt)
        except DevloopError:
            return False
        if self._interrupt.is_set():
            return False
        self._state[service].failing = False
        return True

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
        force: Collection[str] = (),
    ) -> bool:
        """Build (`force`: even when the tag exists, and make their containers anew), then
        deploy what changed; False when the build failed."""
        targets = self.project.closure(services)
        try:
            built = self._builder.build(targets, force=force)
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
            return False
        for name in force:  # kept: every later deploy renders the same stamp
            self._state[name].stamp = str(time.time_ns())
        changed = set(redeploy) | set(force)
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
        return True

    def _deploy(self, services: Sequence[str]) -> None:
        refs = {n: s.ref for n, s in self._state.items() if s.ref}
        missing = [n for n in self.names if n not in refs]
        if missing:
            self._emit(Error(f"not deployed: no image yet for {', '.join(missing)}"))
            return
        try:
            stamps = {n: s.stamp for n, s in self._state.items() if s.stamp}
            manifests = steer.stamped(render(self.project, refs, self.names), stamps)
            self.runtime.deploy(manifests, self.names)
        except DevloopError as exc:
            service = exc.service if isinstance(exc, DeployError) else None
            # on a first deploy, or when the old container is gone already (replaced
            # remove-first), "the running version stays" would mislead
            stays = "; the running version stays" if self._still_running(service) else ""
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
            failed = exc.service if isinstance(exc, DeployError) else None
            self._emit(Error(str(exc), service=failed))
            for n in services:
                self._state[n].failing = failed in (None, n)
            ready = False
        # a new edit interrupts the wait: its step comes next, and containers that come up
        # later are replayed into and reported ready as they start (`_on_instances`)
        ready = ready and not self._interrupt.is_set()
        if not self._urls:
            self._urls = self.runtime.forward_ports(self._emit, self._forward_stop)
        for n in services:
            self._state[n].deployed = True
            fresh = [
                i
                for i in self._syncer.instances(n, fresh=True)
                if i.generation not in self._state[n].generations
            ]
            self._replay_into(n, fresh)
            self._state[n].down = False
            if ready and any(m.service == n for m in manifests):
                self._state[n].failing = False
                self._emit(self._ready(n))

    def _ready(self, service: str, first_seen: float | None = None) -> Ready:
        replicas = len(self._syncer.instances(service))  # listed just before: cached
        ms = round((time.monotonic() - first_seen) * 1000, 2) if first_seen else None
        return Ready(service=service, urls=self._urls.get(service, []), replicas=replicas, ms=ms)

    def _ready_after_restart(self) -> None:
        """The processes restarted in place (their sync events are out already): wait until each
        service serves again, then say `ready` with the edit's time. A new edit ends the wait
        (its step comes next); a service that does not come back is said once, as an error."""
        for service, first_seen in self._syncer.restarted().items():
            if self._interrupt.is_set() or service not in self._state:
                return
            try:
                self.runtime.wait_ready([service], RESTART_READY_TIMEOUT, self._interrupt)
            except DevloopError as exc:
                self._state[service].failing = True
                self._emit(Error(f"after the restart: {exc}", service=service))
                continue
            if not self._interrupt.is_set():
                self._emit(self._ready(service, first_seen))


def _drain(q: queue.Queue[Work]) -> list[Work]:
    out: list[Work] = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def _coalesce(items: Sequence[Work]) -> list[Work]:
    """The queued work in order: the resends of failed syncs first, then each run of batches
    merged into one (the first change's time kept) between the requests, then the instance
    changes; resends and instance changes deduplicated."""
    units: list[Work] = [
        Resend(s) for s in dict.fromkeys(i.service for i in items if isinstance(i, Resend))
    ]
    run: list[ChangeBatch] = []
    for item in items:
        if isinstance(item, ChangeBatch):
            run.append(item)
        elif isinstance(item, Request):
            if run:
                units.append(_merged(run))
                run = []
            units.append(item)
    if run:
        units.append(_merged(run))
    services = dict.fromkeys(i.service for i in items if isinstance(i, InstancesChanged))
    return units + [InstancesChanged(s) for s in services]


def _merged(batches: Sequence[ChangeBatch]) -> ChangeBatch:
    """One batch: the last word on each path, the first change's time."""
    latest: dict[Path, Change] = {}
    for b in batches:
        for c in b:
            latest[c.path] = c
    return ChangeBatch(tuple(latest.values()), min((b.first_seen for b in batches), default=0.0))


def _shown(project: Project, change: Change) -> str:
    try:
        return change.path.relative_to(project.root).as_posix()
    except ValueError:
        return str(change.path)
