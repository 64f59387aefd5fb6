"""Steering a dev session (rebuild, restart, trigger, pause, resume), driven step by step on the
real Docker engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from devloop.loop.steer import RequestError
from devloop.model.events import Paused, Pending, Requested, Resumed, SyncDone
from tests.devproc import eventually, http_get
from tests.loop.test_session import Rig, make_rig

pytestmark = [pytest.mark.docker]


@pytest.fixture
def rig(
    tmp_path: Path, docker_client: docker.DockerClient, base_image: str
) -> Iterator[tuple[Rig, str]]:
    yield from make_rig(tmp_path, docker_client)


@pytest.fixture
def manual(
    tmp_path: Path, docker_client: docker.DockerClient, base_image: str
) -> Iterator[tuple[Rig, str]]:
    yield from make_rig(tmp_path, docker_client, trigger="manual")


def _ids(r: Rig) -> set[str]:
    return {i.id for i in r.runtime.instances("web")}


def test_rebuild_builds_and_makes_new_containers_though_nothing_changed(
    rig: tuple[Rig, str],
) -> None:
    r, url = rig
    before = _ids(r)
    mark = len(r.events)
    r.session.request("rebuild", "web")
    r.step_until("ready", mark)
    kinds = r.kinds(mark)
    assert kinds[0] == "request" and r.events[mark] == Requested("rebuild", "web")
    assert "build_started" in kinds and "build_skipped" not in kinds, kinds
    assert kinds.index("build_done") < kinds.index("deploy") < kinds.index("ready")
    after = _ids(r)
    assert after and not after & before, "the same containers still run"
    assert http_get(f"{url}/index.html") == (200, "one\n")
    # an ordinary step later does not make them anew again (the stamp is kept)
    mark = len(r.events)
    (r.root / "app/notes.txt").write_text("b\n")
    r.changes.push(r.root / "app/notes.txt")
    r.step_until("ready", mark)
    newer = _ids(r)
    r.session.request("restart")  # the same containers, the process restarted in place
    mark = len(r.events)
    r.step_until("restart", mark)
    assert _ids(r) == newer


def test_restart_restarts_the_process_in_the_same_container(rig: tuple[Rig, str]) -> None:
    r, _ = rig
    before = _ids(r)
    mark = len(r.events)
    r.session.request("restart", "web")
    r.step_until("restart", mark)
    assert r.kinds(mark)[:2] == ["request", "restart"]
    assert _ids(r) == before


def test_manual_trigger_holds_changes_until_triggered(manual: tuple[Rig, str]) -> None:
    r, url = manual
    index = r.root / "app/site/index.html"
    mark = len(r.events)
    index.write_text("two\n")
    r.changes.push(index)
    r.step_until("pending", mark)
    pending = [e for e in r.events[mark:] if isinstance(e, Pending)]
    assert pending[-1] == Pending("web", 1, ["app/site/index.html"])
    (r.root / "app/site/new.html").write_text("new\n")
    r.changes.push(r.root / "app/site/new.html", kind="added")
    index.write_text("three\n")
    r.changes.push(index)
    for _ in range(10):
        r.session.step(0.05)
    pending = [e for e in r.events[mark:] if isinstance(e, Pending)]
    assert pending[-1].files == 2, pending  # one path edited twice counts once
    assert "sync" not in r.kinds(mark) and "build_started" not in r.kinds(mark)
    assert http_get(f"{url}/index.html") == (200, "one\n")

    mark = len(r.events)
    threading.Thread(target=r.session.request, args=("trigger",)).start()  # from any thread
    r.step_until("sync", mark)
    sync = next(e for e in r.events[mark:] if isinstance(e, SyncDone))
    assert sorted(sync.paths) == ["/www/index.html", "/www/new.html"]
    assert Pending("web", 0) in r.events[mark:]
    eventually(lambda: http_get(f"{url}/index.html") == (200, "three\n"), 20, what="triggered")
    # nothing waits any more: a second trigger says so
    mark = len(r.events)
    r.session.request("trigger", "web")
    r.step_until("info", mark)
    assert "no changes wait" in r.events[-1].message  # type: ignore[attr-defined]


def test_edits_made_while_paused_are_applied_as_one_batch_on_resume(
    rig: tuple[Rig, str],
) -> None:
    r, url = rig
    mark = len(r.events)
    r.session.request("pause")
    r.step_until("paused", mark)
    assert r.session.paused
    index = r.root / "app/site/index.html"
    for text in ("two\n", "three\n"):
        index.write_text(text)
        r.changes.push(index)
    (r.root / "app/site/b.html").write_text("b\n")
    r.changes.push(r.root / "app/site/b.html", kind="added")
    for _ in range(10):
        r.session.step(0.05)
    assert [e for e in r.events[mark:] if isinstance(e, Paused)][-1].files == 2
    assert "sync" not in r.kinds(mark)
    assert http_get(f"{url}/index.html") == (200, "one\n")

    mark = len(r.events)
    r.session.request("resume")
    r.step_until("sync", mark)
    assert Resumed(files=2) in r.events[mark:]
    syncs = [e for e in r.events[mark:] if isinstance(e, SyncDone)]
    assert len(syncs) == 1 and sorted(syncs[0].paths) == ["/www/b.html", "/www/index.html"]
    eventually(lambda: http_get(f"{url}/index.html") == (200, "three\n"), 20, what="resumed")


def test_a_request_naming_an_unknown_service_or_command_is_refused(rig: tuple[Rig, str]) -> None:
    r, _ = rig
    with pytest.raises(RequestError, match="unknown service 'nope' \\(services: web\\)"):
        r.session.request("rebuild", "nope")
    with pytest.raises(RequestError, match="unknown command 'explode'"):
        r.session.request("explode")
    with pytest.raises(RequestError, match="whole session"):
        r.session.request("pause", "web")
