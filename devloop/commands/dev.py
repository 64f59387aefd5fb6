"""`devloop dev`: build, deploy, then sync or rebuild on every change until Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from devloop import config
from devloop.bridge.factory import open_bridge
from devloop.bridge.intercept import LocalBridge, Options
from devloop.build import buildkit
from devloop.build.builder import Builder
from devloop.clients.docker import connect
from devloop.commands.common import new_session_id, selected
from devloop.errors import EXIT_INTERRUPTED, EXIT_OK, DevloopError
from devloop.loop.lock import SessionLock
from devloop.loop.session import Session
from devloop.model.events import Dashboard, Emit, Info, WarningEvent
from devloop.model.project import Project, Trigger
from devloop.output import sink, tee
from devloop.runtime.factory import open_runtime, target_of
from devloop.ui import keys
from devloop.ui.live import LiveView
from devloop.watch.choice import watcher_factory

if TYPE_CHECKING:
    from devloop.ui.server import Dashboard as DashboardServer


def run(
    directory: Path,
    *,
    profiles: Sequence[str] = (),
    services: Sequence[str] = (),
    output: str = "text",
    keep: bool = False,
    context: str | None = None,
    watcher: str = "auto",
    trigger: str | None = None,
    ui: bool = True,
    ui_port: int | None = None,
    local: Local | None = None,
) -> int:
    project = config.load(directory, profiles, kube_context=context)
    names = selected(project, services)
    if local is not None:
        selected(project, [local.service])
        if local.service not in names:
            names = (*names, local.service)
    keyboard = output == "text" and keys.interactive()
    emit = sink(output, live=True, keys=keyboard)
    lock = _lock(project, context)
    lock.acquire()
    try:
        with _dashboard(ui, ui_port) as dashboard:
            view = emit  # the terminal's sink: the keys answer there
            if dashboard is not None:
                emit = tee(emit, dashboard.hub)
                emit(Dashboard(url=dashboard.url))
            return _run(
                project,
                names,
                emit,
                lock,
                keep=keep,
                context=context,
                watcher=watcher,
                trigger="manual" if trigger == "manual" else "auto" if trigger else None,
                dashboard=dashboard,
                view=view if keyboard else None,
                local=local,
            )
    finally:
        lock.release()


@contextlib.contextmanager
def _dashboard(wanted: bool, port: int | None) -> Iterator[DashboardServer | None]:
    """The web dashboard (devloop.ui), serving until the session is over; None with --no-ui."""
    if not wanted:
        yield None
        return
    from devloop.ui.hub import Hub
    from devloop.ui.server import Dashboard as Server  # starlette and uvicorn: only with the UI

    server = Server(Hub(), port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Local:
    """`--local SERVICE` and its options."""

    service: str
    options: Options
    relay_base: str | None = None


def _lock(project: Project, context: str | None) -> SessionLock:
    target = target_of(project, context)
    where = (
        f"{context or project.kube_context or 'current-context'}/{project.namespace}"
        if target == "kubernetes"
        else os.environ.get("DOCKER_HOST", "")
    )
    return SessionLock(project.name, target, where)


def _run(
    project: Project,
    names: Sequence[str],
    emit: Emit,
    lock: SessionLock,
    *,
    keep: bool,
    context: str | None,
    watcher: str = "auto",
    trigger: Trigger | None = None,
    dashboard: DashboardServer | None = None,
    view: Emit | None = None,
    local: Local | None = None,
) -> int:
    if note := lock.took_over():
        emit(Info(message=note))
    client = connect()
    runtime = open_runtime(
        project, client, session=new_session_id(), dev=True, context_flag=context
    )

    def builder(p: Project) -> Builder:
        return Builder(p, client, emit, target=runtime.images)

    session = Session(
        project,
        names,
        runtime,
        builder,
        emit,
        watcher_factory=watcher_factory(watcher),
        trigger=trigger,
    )
    if dashboard is not None:
        dashboard.act = session.request  # the page's buttons steer the session
    signals = _Signals(session.stop)
    error: BaseException | None = None
    bridge: LocalBridge | None = None
    with _terminal(session, view):  # the terminal comes back on every way out
        try:
            signals.install()
            session.start()
            if local is not None:
                bridge = open_bridge(
                    project, local.service, runtime, client, emit, local.options, local.relay_base
                )
                bridge.start()
                _stop_when_exited(bridge, session.stop, emit)
            signals.started = True
            session.run()
        except KeyboardInterrupt as exc:
            if not signals.received:
                error = exc
                raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            signals.shield()  # a second Ctrl-C (or TERM, HUP) must not cut the cleanup short
            try:
                if bridge is not None:
                    bridge.close()
                session.close(keep=keep)
            except DevloopError as exc:
                if error is None:
                    raise
                # the real error goes up; a teardown that fails too is only reported
                emit(WarningEvent(f"cleanup after the error failed too: {exc}"))
            finally:
                signals.restore()
    if signals.received is not None and _builds_running():
        # The Docker SDK cannot cancel a build call: leaving the process closes its socket,
        # which makes the engine cancel the build and remove its container (forcerm).
        # Waiting instead would hold Ctrl-C until the build's end (the pool's threads are
        # joined at exit).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(signals.exit_code())
    return signals.exit_code()


@contextlib.contextmanager
def _terminal(session: Session, view: Emit | None) -> Iterator[None]:
    """Keys read while the block runs, when `view` (the terminal's sink) is given (q = Ctrl-C);
    the live view closed at its end."""
    try:
        if isinstance(view, keys.View):
            with keys.reading(keys.Keys(session, view)):
                yield
        else:
            yield
    finally:
        if isinstance(view, LiveView):
            view.close()


def _stop_when_exited(bridge: LocalBridge, stop: threading.Event, emit: Emit) -> None:
    """End the session when the local process ends (the developer stopped it, or it crashed)."""

    def wait() -> None:
        while not stop.wait(0.2):
            code = bridge.exited()
            if code is not None:
                emit(Info(f"the local {bridge.env.service} process exited ({code}): stopping"))
                stop.set()

    threading.Thread(target=wait, name="devloop-local-wait", daemon=True).start()


def _builds_running() -> bool:
    return any(t.name.startswith("devloop-build") and t.is_alive() for t in threading.enumerate())


class _Signals:
    """Ctrl-C, SIGTERM and SIGHUP (terminal closed) all end the session with a cleanup.

    Once the session runs they only set state (the loop notices within one step); during
    the first build and deploy they abort it at once (the build's API call is abandoned).
    Exit code: 128 + the first signal (130 INT, 143 TERM, 129 HUP), like other CLIs.
    """

    NUMS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.received: int | None = None
        self.started = False
        self._saved: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for num in self.NUMS:
            self._saved[num] = signal.signal(num, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signum
        self.stop.set()
        buildkit.cancel_all()  # a CLI build, not in the terminal's reach for q, TERM or HUP
        if not self.started or not first:
            raise KeyboardInterrupt

    def shield(self) -> None:
        if self._saved:
            for num in self.NUMS:
                signal.signal(num, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        self.stop.set()

    def restore(self) -> None:
        for num, handler in self._saved.items():
            signal.signal(num, handler)

    def exit_code(self) -> int:
        if self.received is None:
            return EXIT_OK
        return EXIT_INTERRUPTED if self.received == signal.SIGINT else 128 + self.received
