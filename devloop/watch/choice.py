"""Which watcher runs: inotify read directly on Linux, watchfiles elsewhere or when asked."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from devloop.model.changes import ChangeBatch
from devloop.model.project import Project

WatcherKind = Literal["auto", "inotify", "watchfiles"]
WATCHER_KINDS: tuple[str, ...] = ("auto", "inotify", "watchfiles")
WatcherFactory = Callable[[Project, Sequence[str], threading.Event], Iterable[ChangeBatch]]


def resolve(kind: str = "auto") -> str:
    """`auto` is inotify on Linux, watchfiles on macOS and Windows."""
    if kind == "auto":
        return "inotify" if sys.platform.startswith("linux") else "watchfiles"
    return kind


def watcher_factory(kind: str = "auto") -> WatcherFactory:
    chosen = resolve(kind)

    def make(
        project: Project, services: Sequence[str], stop: threading.Event
    ) -> Iterable[ChangeBatch]:
        if chosen == "inotify":
            from devloop.watch.inotify import InotifyWatcher

            return InotifyWatcher(project, services, stop)
        from devloop.watch.watcher import Watcher

        return Watcher(project, services, stop)

    return make
