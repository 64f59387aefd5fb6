"""Lost events and lost watches: the watcher rescans, diffs against what it knew, and reports the
difference (issue 13 item 1)."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from inotify_simple import Event
from inotify_simple import flags as F

from devloop.model.project import Project
from devloop.watch.inotify import InotifyWatcher
from tests.watch.test_watcher import WATCHERS, Running, make_project

QUEUE_KNOB = Path("/proc/sys/fs/inotify/max_queued_events")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)


@pytest.fixture(params=sorted(WATCHERS))
def running(project: Project, request: pytest.FixtureRequest) -> Iterator[Running]:
    r = Running(project, str(request.param))
    yield r
    r.close()


def test_deleted_and_recreated_directories_stay_watched(project: Project, running: Running) -> None:
    """rm -rf d && mkdir d, 0-5 ms apart, many times: every later edit in d still comes through."""
    root = project.root
    sub = root / "web/app/sub"
    for i in range(12):
        for _ in range(5):
            shutil.rmtree(sub, ignore_errors=True)
            time.sleep((i % 6) / 1000)
            sub.mkdir()
            (sub / "inner").mkdir()
            (sub / "inner/b.py").write_text(f"{i}")
        running.collect({"web/app/sub/inner/b.py"}, root)
        time.sleep(0.05)
        (sub / f"probe{i}.py").write_text("x")
        (sub / f"inner/probe{i}.py").write_text("y")
        probes = {f"web/app/sub/probe{i}.py", f"web/app/sub/inner/probe{i}.py"}
        _, seen = running.collect(probes, root, timeout=5)
        assert {seen[p] for p in probes} == {"added"}


def test_overflow_rescans_and_reports_what_was_missed(project: Project) -> None:
    """An IN_Q_OVERFLOW (fed by hand: the events before it were lost) makes the watcher diff
    the roots against what it knew."""
    root = project.root
    time.sleep(0.1)  # files changed just before watching are left unknown (reported on rescan)
    w = InotifyWatcher(project, ["web"], threading.Event())
    w.snapshot()
    try:
        (root / "web/app/main.py").write_text("changed, event lost")
        (root / "web/app/lib/util.py").unlink()
        (root / "web/app/pkg").mkdir()
        (root / "web/app/pkg/new.py").write_text("new")
        w._ino.read(timeout=0)  # the events are lost
        touched: dict[str, int] = {}
        rescan: set[str] = set()
        w._fold([Event(-1, F.Q_OVERFLOW, 0, "")], touched, rescan)
        got = {c.path.relative_to(root).as_posix(): c.kind for c in w._resolve(touched, rescan)}
        assert got == {
            "web/app/main.py": "modified",
            "web/app/lib/util.py": "deleted",
            "web/app/pkg/new.py": "added",
        }
        (root / "web/app/pkg/later.py").write_text("the new directory is watched")
        assert any(e.name == "later.py" for e in w._ino.read(timeout=1000))
    finally:
        w.close()


@contextlib.contextmanager
def _queue_of(size: int) -> Iterator[None]:
    """A tiny inotify queue for instances made inside (the knob applies at creation)."""
    old = QUEUE_KNOB.read_text()
    QUEUE_KNOB.write_text(str(size))
    try:
        yield
    finally:
        QUEUE_KNOB.write_text(old)


@pytest.mark.skipif(not os.access(QUEUE_KNOB, os.W_OK), reason="needs root to set the queue size")
def test_real_queue_overflow_loses_nothing(project: Project) -> None:
    root = project.root
    stop = threading.Event()
    with _queue_of(16):
        w = WATCHERS["inotify"](project, ["web"], stop)
    names = {f"web/app/f{i:03d}.py" for i in range(300)}
    for rel in sorted(names):  # nobody reads yet: the 16-event queue overflows
        (root / rel).write_text(rel)
    r = Running(project, made=(w, stop))
    try:
        _, seen = r.collect(names, root)
        assert all(seen[n] == "added" for n in names)
    finally:
        r.close()
