"""The watcher on a real filesystem: a project in tmp_path, a writer, and the batches that come
out."""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from devloop import config
from devloop.model.changes import ChangeBatch
from devloop.model.project import Project
from devloop.watch.inotify import InotifyWatcher
from devloop.watch.watcher import Watcher, watch_roots

# Every behaviour test runs against both watchers: inotify read directly, and watchfiles.
WATCHERS = {"inotify": InotifyWatcher, "watchfiles": Watcher}


@pytest.fixture(params=sorted(WATCHERS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


CONFIG = """\
name: watched
ignore: ["scratch"]
services:
  web:
    image: watched/web
    context: web
    manifests: [deploy/web.yaml.j2]
    sync:
      - {src: "public/**", dest: /srv}
"""
FILES = {
    "devloop.yaml": CONFIG,
    "deploy/web.yaml.j2": "",
    "web/Dockerfile": "FROM scratch\n",
    "web/.dockerignore": "dist\nlogs\n!logs/keep.txt\npublic\n",
    "web/app/main.py": "",
    "web/app/lib/util.py": "",
    "web/node_modules/left-pad/index.js": "",
    "web/node_modules/left-pad/lib/x.js": "",
    "web/.git/HEAD": "",
    "web/app/__pycache__/main.pyc": "",
    "web/dist/bundle.js": "",
    "web/dist/maps/bundle.map": "",
    "web/logs/keep.txt": "",
    "web/public/index.html": "",
    "web/scratch/notes.txt": "",
    "other/unrelated.txt": "",
}


def make_project(root: Path) -> Project:
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return config.load(root)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)


class Running:
    """A Watcher iterated in a thread; the test reads its batches from a queue."""

    def __init__(
        self,
        project: Project,
        kind: str = "inotify",
        made: tuple[Iterable[ChangeBatch], threading.Event] | None = None,
        **kw: int,
    ) -> None:
        self.stop = made[1] if made else threading.Event()
        self.watcher = made[0] if made else WATCHERS[kind](project, ["web"], self.stop, **kw)
        self.batches: queue.Queue[ChangeBatch] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for batch in self.watcher:
            self.batches.put(batch)

    def collect(
        self, until: set[str], root: Path, timeout: float = 20
    ) -> tuple[list[ChangeBatch], dict[str, str]]:
        """Batches until every path in `until` (project-relative) was seen, as {path: last kind}."""
        got: list[ChangeBatch] = []
        seen: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while not until <= seen.keys():
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {sorted(until - seen.keys())}; saw {sorted(seen)}"
            try:
                batch = self.batches.get(timeout=left)
            except queue.Empty:
                continue
            got.append(batch)
            seen.update({c.path.relative_to(root).as_posix(): c.kind for c in batch})
        return got, seen

    def quiet(self, seconds: float = 0.5) -> list[ChangeBatch]:
        time.sleep(seconds)
        out = []
        while not self.batches.empty():
            out.append(self.batches.get_nowait())
        return out

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.fixture
def running(project: Project, kind: str) -> Iterator[Running]:
    r = Running(project, kind)
    yield r
    r.close()


def test_roots_skip_ignored_trees(project: Project) -> None:
    roots = watch_roots(project, ["web"])
    rels = sorted(Path(d).relative_to(project.root).as_posix() for d in roots.dirs)
    # node_modules, .git, __pycache__, dist (dockerignored) and scratch (project ignore) get
    # no watch;
    # logs stays (a ! exception reaches into it), public stays (a sync rule reaches into it)
    assert rels == [".", "deploy", "web", "web/app", "web/app/lib", "web/logs", "web/public"]
    assert [p.relative_to(project.root).as_posix() for p in roots.recursive] == [
        "web/app/lib",
        "web/logs",
        "web/public",
    ]
    assert {p.relative_to(project.root).as_posix() for p in roots.flat} == {
        "web",
        "web/app",
        "deploy",
        ".",
    }
    # files directly in the watched directories: web/{Dockerfile,.dockerignore}, app/main.py,
    # lib/util.py,
    # logs/keep.txt, public/index.html
    assert roots.files == 6


NESTED = """\
name: nested
services:
  all:
    image: nested/all
    context: .
  web:
    image: nested/web
    context: web
"""


def test_nested_contexts_prune_only_what_every_holder_excludes(tmp_path: Path) -> None:
    files = {
        "devloop.yaml": NESTED,
        "Dockerfile": "FROM scratch\n",
        ".dockerignore": "web/cache\nweb/both\n",
        "web/Dockerfile": "FROM scratch\n",
        "web/.dockerignore": "build\nboth\n",
        "web/cache/c.bin": "",
        "web/build/b.o": "",
        "web/both/x": "",
        "web/src/main.c": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    roots = watch_roots(config.load(tmp_path), [])
    rels = sorted(Path(d).relative_to(tmp_path).as_posix() for d in roots.dirs)
    # cache: excluded by the outer context only; build: by the inner only; both: by both
    assert rels == [".", "web", "web/build", "web/cache", "web/src"]
    assert roots.trees == (tmp_path,)


def test_watcher_reports_what_it_watches(project: Project, kind: str) -> None:
    w = WATCHERS[kind](project, ["web"], threading.Event())
    try:
        assert w.watches == 7
        assert w.file_count == 6
        event = w.event()
        assert event.files == 6 and event.ms > 0
        assert sorted(Path(r).relative_to(project.root).as_posix() for r in event.roots) == [
            ".",
            "deploy",
            "web",
        ]
    finally:
        w.close()


def test_create_modify_delete(project: Project, running: Running) -> None:
    root = project.root
    before = time.monotonic()
    (root / "web/app/new.py").write_text("x = 1\n")
    got, seen = running.collect({"web/app/new.py"}, root)
    assert seen["web/app/new.py"] == "added"
    assert before <= got[0].first_seen <= time.monotonic()

    (root / "web/app/main.py").write_text("print('hi')\n")
    _, seen = running.collect({"web/app/main.py"}, root)
    assert seen["web/app/main.py"] == "modified"

    (root / "web/app/lib/util.py").unlink()
    _, seen = running.collect({"web/app/lib/util.py"}, root)
    assert seen["web/app/lib/util.py"] == "deleted"


def test_templates_and_config_are_watched(project: Project, running: Running) -> None:
    (project.root / "deploy/web.yaml.j2").write_text("kind: x\n")
    (project.root / "devloop.yaml").write_text(CONFIG + "\n")
    _, seen = running.collect({"deploy/web.yaml.j2", "devloop.yaml"}, project.root)
    assert seen["devloop.yaml"] == "modified"


def test_ignored_writes_produce_nothing(project: Project, running: Running) -> None:
    root = project.root
    (root / "web/node_modules/left-pad/index.js").write_text("changed")
    (root / "web/node_modules/new-dep").mkdir()
    (root / "web/node_modules/new-dep/index.js").write_text("")
    (root / "web/.git/HEAD").write_text("ref: x")
    (root / "web/app/__pycache__/main.pyc").write_text("x")
    (root / "web/dist/bundle.js").write_text("x")
    (root / "web/scratch/notes.txt").write_text("x")
    (root / "web/app/.main.py.swp").write_text("x")
    (root / "web/app/4913").write_text("x")
    (root / "web/app/main.py~").write_text("x")
    assert running.quiet(1.0) == []
    # the watcher is alive: a real edit right after still comes through, alone
    (root / "web/app/main.py").write_text("edit")
    _, seen = running.collect({"web/app/main.py"}, root)
    assert set(seen) == {"web/app/main.py"}


def test_burst_of_2000_files_comes_as_few_batches(project: Project, running: Running) -> None:
    """The session takes whatever queued while its last sync ran (in-flight coalescing): with
    a 50 ms sync, a burst becomes about one batch per sync, never one per file."""
    root = project.root
    names = {f"web/app/f{i:04d}.py" for i in range(2000)}
    started = time.monotonic()
    for rel in sorted(names):
        (root / rel).write_text(rel)
    writing = time.monotonic() - started
    steps: list[int] = []
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while not names <= seen:
        assert time.monotonic() < deadline, f"never saw {len(names - seen)} files"
        try:
            got = [running.batches.get(timeout=1)]
        except queue.Empty:
            continue
        while not running.batches.empty():
            got.append(running.batches.get_nowait())
        steps.append(sum(len(b) for b in got))
        seen |= {c.path.relative_to(root).as_posix() for b in got for c in b}
        time.sleep(0.05)  # the sync of this step
    assert len(steps) <= 3 + writing / 0.05, steps


def test_new_directory_is_watched(project: Project, running: Running) -> None:
    root = project.root
    # created and filled at once: files land before the watch on the new directory can exist
    (root / "web/app/pkg/sub").mkdir(parents=True)
    (root / "web/app/pkg/sub/a.py").write_text("a")
    (root / "web/app/pkg/b.py").write_text("b")
    got, _ = running.collect({"web/app/pkg/sub/a.py", "web/app/pkg/b.py"}, root)
    # its first report is "added" (found by the new directory's scan); the write's own
    # CLOSE_WRITE may still arrive in a later batch, as a modification of what was reported
    first = next(c.kind for b in got for c in b if c.path == root / "web/app/pkg/sub/a.py")
    assert first == "added"
    assert running.watcher.watches == 9
    time.sleep(0.2)
    (root / "web/app/pkg/sub/c.py").write_text("c")
    _, seen = running.collect({"web/app/pkg/sub/c.py"}, root)
    assert seen["web/app/pkg/sub/c.py"] == "added"


def test_new_directory_in_a_flat_parent_and_ignored_new_directory(
    project: Project, running: Running
) -> None:
    root = project.root
    # web/ is watched alone (it holds node_modules): its new children must still be picked up
    (root / "web/src").mkdir()
    (root / "web/src/x.go").write_text("x")
    (root / "web/node_modules/brand-new").mkdir()  # inside an ignored tree: never watched
    (root / "web/dist2").mkdir()
    _, seen = running.collect({"web/src/x.go"}, root)
    assert "web/node_modules/brand-new" not in seen
    (root / "web/src/y.go").write_text("y")
    running.collect({"web/src/y.go"}, root)


def test_deleted_directory_is_forgotten(project: Project, running: Running) -> None:
    root = project.root
    (root / "web/app/lib/util.py").unlink()
    (root / "web/app/lib").rmdir()
    _, seen = running.collect({"web/app/lib"}, root)
    assert seen["web/app/lib"] == "deleted"
    assert running.watcher.watches == 6


def test_deleted_directories_are_marked_as_directories(project: Project, running: Running) -> None:
    """A renamed or removed folder: the planner deletes a folder in the container only when the
    watcher says the deleted path was one, nested folders included (whatever order the notifier
    reports them in)."""
    root = project.root
    for trial in range(5):
        (root / f"web/app/pkg{trial}/sub/deeper").mkdir(parents=True)
        (root / f"web/app/pkg{trial}/sub/deeper/m.py").write_text("")
        running.collect({f"web/app/pkg{trial}/sub/deeper/m.py"}, root)
        (root / f"web/app/pkg{trial}").rename(root / f"web/app/moved{trial}")
        got, _ = running.collect({f"web/app/pkg{trial}"}, root)
        gone = {c.path.relative_to(root).as_posix(): c.directory for b in got for c in b}
        assert gone[f"web/app/pkg{trial}"] is True
        shutil.rmtree(root / f"web/app/moved{trial}")
        top, file = f"web/app/moved{trial}", f"web/app/moved{trial}/sub/deeper/m.py"
        got, _ = running.collect({top, file}, root)
        got += running.quiet(0.3)
        marked = {c.path.relative_to(root).as_posix(): c.directory for b in got for c in b}
        # the folders below may be reported too (watchfiles does): marked as folders as well
        assert {p: d for p, d in marked.items() if p != file} == {
            p: True for p in marked if p != file
        }
        assert top in marked and marked[file] is False


def test_stop_ends_iteration_promptly(project: Project, kind: str) -> None:
    r = Running(
        project, kind, poll_ms=60_000
    )  # not the poll timeout: the stop event itself ends the wait
    time.sleep(0.2)
    r.stop.set()
    r.thread.join(timeout=5)
    assert not r.thread.is_alive()
