"""`devloop dev`: build, deploy, then sync or rebuild on every change until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from devloop import config
from devloop.build.builder import Builder
from devloop.clients.docker import connect
from devloop.commands.common import new_session_id, selected
from devloop.errors import EXIT_INTERRUPTED, EXIT_OK, DevloopError
from devloop.loop.session import Session
from devloop.model.events import WarningEvent
from devloop.model.project import Project
from devloop.output import sink
from devloop.runtime.factory import open_runtime


def run(
    directory: Path,
    *,
    profiles: Sequence[str] = (),
    services: Sequence[str] = (),
    output: str = "text",
    keep: bool = False,
    context: str | None = None,
) -> int:
    project = config.load(directory, profiles, kube_context=context)
    names = selected(project, services)
    emit = sink(output)
    client = connect()
    runtime = open_runtime(
        project, client, session=new_session_id(), dev=True, context_flag=context
    )

    def builder(p: Project) -> Builder:
        return Builder(p, client, emit, target=runtime.images)

    session = Session(project, names, runtime, builder, emit)
    interrupted = _on_signals(session.stop)
    try:
        session.start()
        session.run()
    except BaseException:
        # the real error goes up; a teardown that fails too is only reported
        try:
            session.close(keep=keep)
        except DevloopError as exc:
            emit(WarningEvent(f"cleanup after the error failed too: {exc}"))
        raise
    session.close(keep=keep)
    return EXIT_INTERRUPTED if interrupted.is_set() else EXIT_OK


def _on_signals(stop: threading.Event) -> threading.Event:
    """Ctrl-C and SIGTERM only set state; the loop notices within one step. A second Ctrl-C
    aborts."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return interrupted

    def handle(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            interrupted.set()
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return interrupted
