"""The dev session driven one step at a time by a scripted change source, on the real Docker
engine."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path

import docker
import pytest

from devloop import config
from devloop.build.builder import Builder, BuiltImage
from devloop.loop.session import Session
from devloop.model.changes import Change, ChangeBatch, ChangeKind
from devloop.model.events import Error, Event
from devloop.model.project import Project, Trigger
from devloop.runtime.docker.runtime import DockerRuntime
from tests.devproc import eventually, free_port, http_get

pytestmark = [pytest.mark.docker]

CONFIG = """\
name: {name}
services:
  web:
    image: devloop-test-session/{name}
    context: app
    archetype: web
    ports: ["{port}:8080"]
    sync:
      - {{src: "site/**", dest: /www}}
"""


class ScriptedChanges:
    """Stands in for the watcher: the test says which paths changed, and when."""

    def __init__(self) -> None:
        self._queue: queue.Queue[ChangeBatch] = queue.Queue()

    def factory(
        self, project: Project, services: Sequence[str], stop: threading.Event
    ) -> Iterable[ChangeBatch]:
        return self._iterate(stop)

    def _iterate(self, stop: threading.Event) -> Iterator[ChangeBatch]:
        while not stop.is_set():
            try:
                yield self._queue.get(timeout=0.02)
            except queue.Empty:
                continue

    def push(self, *paths: Path, kind: ChangeKind = "modified") -> None:
        self._queue.put(ChangeBatch(tuple(Change(kind, p) for p in paths), time.monotonic()))


class Rig:
    def __init__(
        self, root: Path, client: docker.DockerClient, trigger: Trigger | None = None
    ) -> None:
        self.root = root
        self.events: list[Event] = []
        self.changes = ScriptedChanges()
        self.during_build: list[Callable[[], None]] = []
        project = config.load(root)
        self.runtime = DockerRuntime(project, client, uuid.uuid4().hex[:8], dev=True)

        rig = self

        class HookedBuilder(Builder):
            def build(
                self, names: Iterable[str] = (), *, force: Collection[str] = ()
            ) -> dict[str, BuiltImage]:
                while rig.during_build:
                    rig.during_build.pop(0)()  # an edit lands while the build runs
                return super().build(names, force=force)

        self.session = Session(
            project,
            ("web",),
            self.runtime,
            lambda p: HookedBuilder(p, client, self.events.append),
            self.events.append,
            watcher_factory=self.changes.factory,
            trigger=trigger,
        )

    def kinds(self, since: int = 0) -> list[str]:
        return [e.kind for e in self.events[since:]]

    def step_until(self, kind: str, since: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while kind not in self.kinds(since):
            assert time.monotonic() < deadline, f"no {kind} event; got {self.kinds(since)}"
            self.session.step(0.05)


@pytest.fixture
def rig(
    tmp_path: Path, docker_client: docker.DockerClient, base_image: str
) -> Iterator[tuple[Rig, str]]:
    yield from make_rig(tmp_path, docker_client)


def make_rig(
    tmp_path: Path, docker_client: docker.DockerClient, trigger: Trigger | None = None
) -> Iterator[tuple[Rig, str]]:
    """A started session over one busybox httpd service: the rig and its URL."""
    name = f"ss{uuid.uuid4().hex[:8]}"
    port = free_port()
    (tmp_path / "app/site").mkdir(parents=True)
    (tmp_path / "app/Dockerfile").write_text(
        'FROM devloop/busybox:latest\nCOPY . /src\nCOPY site /www\nCMD ["httpd", "-f", "-p", '
        '"8080", "-h", "/www"]\n'
    )
    (tmp_path / "app/site/index.html").write_text("one\n")
    (tmp_path / "app/notes.txt").write_text("a\n")
    (tmp_path / "devloop.yaml").write_text(CONFIG.format(name=name, port=port))
    r = Rig(tmp_path, docker_client, trigger)
    r.session.start()
    yield r, f"http://127.0.0.1:{port}"
    r.session.close()
    for img in docker_client.images.list(name=f"devloop-test-session/{name}"):
        docker_client.images.remove(img.id, force=True)


def test_an_edit_made_during_a_build_is_not_lost(rig: tuple[Rig, str]) -> None:
    r, url = rig
    assert "ready" in r.kinds()
    notes, index = r.root / "app/notes.txt", r.root / "app/site/index.html"

    def edit_during_build() -> None:
        index.write_text("two\n")
        r.changes.push(index)

    r.during_build.append(edit_during_build)
    mark = len(r.events)
    notes.write_text("b\n")
    r.changes.push(notes)  # outside the sync rules: rebuild
    r.step_until("build_done", mark)
    r.step_until("sync", mark)  # the queued edit, synced after the build, into the new container
    eventually(
        lambda: http_get(f"{url}/index.html") == (200, "two\n"),
        20,
        what="the edit made during the build",
    )


def test_a_bad_devloop_yaml_is_reported_and_the_running_version_stays(rig: tuple[Rig, str]) -> None:
    r, url = rig
    cfg = r.root / "devloop.yaml"
    good = cfg.read_text()
    mark = len(r.events)
    cfg.write_text(good.replace("archetype: web", "archetyp: web"))
    r.changes.push(cfg)
    r.step_until("error", mark)
    message = next(e.message for e in r.events[mark:] if isinstance(e, Error))
    assert "unknown key 'archetyp'" in message and "devloop.yaml:" in message
    assert http_get(f"{url}/index.html") == (200, "one\n")
    # fixed: reloaded, and syncing still works
    cfg.write_text(good)
    r.changes.push(cfg)
    mark = len(r.events)
    r.step_until("info", mark)
    (r.root / "app/site/index.html").write_text("three\n")
    r.changes.push(r.root / "app/site/index.html")
    r.step_until("sync", mark)
    eventually(
        lambda: http_get(f"{url}/index.html") == (200, "three\n"), 20, what="sync after reload"
    )


def test_step_returns_when_idle_and_false_once_stopped(rig: tuple[Rig, str]) -> None:
    r, _ = rig
    started = time.monotonic()
    assert r.session.step(0.1) is True
    assert time.monotonic() - started < 5
    r.session.stop.set()
    assert r.session.step(0.1) is False
