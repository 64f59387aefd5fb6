"""Crash loops on the Docker engine: `run` that replaces a healthy container by one that crashes
says why (and leaves no half-made container), `delete` removes a restarting container and its
network at once, and `dev` reports a crash loop once, without `ready` events after it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.commands.test_run import CRASH, HTTPD, _devloop, _write
from tests.devproc import DevProcess, eventually, free_port

pytestmark = [pytest.mark.docker]

CONFIG = """\
name: {name}
services:
  web:
    image: i12-crash/{name}-web
    context: web
    archetype: web
    ports: ["{port}:8080"]
  worker:
    image: i12-crash/{name}-worker
    context: worker
    archetype: worker
"""
WORKER = """\
FROM devloop/busybox:latest
CMD ["sh", "-c", "echo working; while true; do sleep 1; done"]
"""


@pytest.fixture
def name(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    project = f"i12c{uuid.uuid4().hex[:8]}"
    yield project
    label = f"app.kubernetes.io/part-of={project}"
    for c in docker_client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)
    for n in docker_client.networks.list(filters={"label": label}):
        n.remove()
    for img in docker_client.images.list(name=f"i12-crash/{project}-*"):
        docker_client.images.remove(img.id, force=True)


def _containers(client: docker.DockerClient, name: str) -> list[docker.models.containers.Container]:
    return list(
        client.containers.list(all=True, filters={"label": f"app.kubernetes.io/part-of={name}"})
    )


def _project(root: Path, name: str) -> None:
    _write(
        root,
        {
            "devloop.yaml": CONFIG.format(name=name, port=free_port()),
            "web/Dockerfile": HTTPD,
            "web/site/index.html": "ok\n",
            "worker/Dockerfile": WORKER,
        },
    )


def test_run_replacing_healthy_containers_by_crashing_ones_says_why(
    tmp_path: Path, name: str, docker_client: docker.DockerClient
) -> None:
    _project(tmp_path, name)
    first = _devloop(tmp_path, "run", "--timeout", "120")
    assert first.returncode == 0, first.stderr
    # both services now crash at start: web publishes a port (replaced remove-first), worker
    # does not (its old container serves until the new one runs)
    _write(tmp_path, {"web/Dockerfile": CRASH, "worker/Dockerfile": CRASH})
    second = _devloop(tmp_path, "run", "--timeout", "60")
    assert second.returncode == 1, second.stdout + second.stderr
    assert "keeps crashing" in second.stderr or "exited with code 7" in second.stderr, second.stderr
    assert "fatal: cannot open /etc/app.conf" in second.stderr
    assert "renaming" not in second.stderr and "sandbox" not in second.stderr
    names = sorted(c.name for c in _containers(docker_client, name))
    assert not any(n.endswith("-next") for n in names), names
    # delete while one restarts and the engine still lists it on the network (it is not
    # connected then: disconnecting it fails): everything goes, the first time
    label = f"app.kubernetes.io/part-of={name}"
    [net] = docker_client.networks.list(filters={"label": label})

    def restarting_on_network() -> bool:
        net.reload()
        attached = set(net.attrs.get("Containers") or {})
        return any(
            c.id in attached and c.attrs["State"].get("Restarting")
            for c in _containers(docker_client, name)
        )

    eventually(restarting_on_network, 30, 0.01, "a restarting container listed on the network")
    deleted = _devloop(tmp_path, "delete")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert _containers(docker_client, name) == []
    assert docker_client.networks.list(filters={"label": label}) == []


def test_dev_reports_a_crash_loop_once_and_no_ready_after_it(
    tmp_path: Path, name: str, docker_client: docker.DockerClient
) -> None:
    _project(tmp_path, name)
    dev = DevProcess(tmp_path, "web")
    try:
        dev.wait_event("ready", service="web", timeout=180)
        since = dev.mark()
        (tmp_path / "web/Dockerfile").write_text(CRASH)
        dev.wait_event("error", since=since, timeout=120)
        diagnosed = dev.mark()
        time.sleep(12)  # Docker restarts it over and over meanwhile
        after = dev.events[diagnosed:]
        assert [e for e in after if e["event"] == "ready"] == [], dev.describe()
        [error] = [e for e in dev.events[since:] if e["event"] == "error"]
        assert error["service"] == "web", dev.describe()
        assert "keeps crashing" in error["message"] or "exited with code 7" in error["message"]
        # the old container went before the new one started (it publishes a port): nothing of
        # the old version runs, and nothing was renamed after the crash
        assert "the running version stays" not in error["message"], error
        assert "renaming" not in error["message"], error
        # fixed: ready again
        (tmp_path / "web/Dockerfile").write_text(HTTPD)
        dev.wait_event("ready", service="web", since=diagnosed, timeout=120)
        eventually(
            lambda: all(c.status == "running" for c in _containers(docker_client, name)),
            30,
            0.3,
            "the fixed container running",
        )
    finally:
        dev.interrupt()
