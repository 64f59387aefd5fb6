"""Signals to the real `devloop dev` process: cleanup first, then 128+N; nothing left behind."""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.devproc import HTTPD_DOCKERFILE, DevProcess, eventually, free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CONFIG = """\
name: {name}
services:
  web:
    image: devloop-test-dev/{name}
    context: app
    archetype: web
    ports: ["{port}:8080"]
    values: {{probe_path: /index.html}}
    sync:
      - src: "site/**"
        dest: /www
"""


@pytest.fixture
def project(
    tmp_path: Path, docker_client: docker.DockerClient, base_image: str
) -> Iterator[tuple[Path, str, int]]:
    name = f"i13s{uuid.uuid4().hex[:8]}"
    port = free_port()
    app = tmp_path / "app"
    (app / "site").mkdir(parents=True)
    (app / "conf").mkdir()
    (app / "Dockerfile").write_text(HTTPD_DOCKERFILE)
    (app / "README.md").write_text("a build input of the image\n")
    (app / "site" / "index.html").write_text("v1\n")
    (app / "conf" / "message").write_text("first\n")
    (tmp_path / "devloop.yaml").write_text(CONFIG.format(name=name, port=port))
    yield tmp_path, name, port
    for c in docker_client.containers.list(
        all=True, filters={"label": f"app.kubernetes.io/part-of={name}"}
    ):
        c.remove(force=True)
    for n in docker_client.networks.list(filters={"label": f"app.kubernetes.io/part-of={name}"}):
        n.remove()
    for img in docker_client.images.list(name=f"devloop-test-dev/{name}"):
        docker_client.images.remove(img.id, force=True)


def left_behind(client: docker.DockerClient, name: str, port: int) -> list[str]:
    """Containers, networks and a published port of the project still there."""
    label = {"label": f"app.kubernetes.io/part-of={name}"}
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
    found += [f"network {n.name}" for n in client.networks.list(filters=label)]
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            found.append(f"port {port}")
    return found


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_term_and_hup_clean_up_then_exit_128_plus_n(
    project: tuple[Path, str, int], docker_client: docker.DockerClient, signum: int, code: int
) -> None:
    root, name, port = project
    dev = DevProcess(root)
    dev.wait_event("ready", service="web", timeout=180)
    assert left_behind(docker_client, name, port) != []
    dev.proc.send_signal(signum)
    assert dev.wait(60) == code, dev.describe()
    assert left_behind(docker_client, name, port) == []


def test_double_ctrl_c_leaves_nothing(
    project: tuple[Path, str, int], docker_client: docker.DockerClient
) -> None:
    root, name, port = project
    dev = DevProcess(root)
    dev.wait_event("ready", service="web", timeout=180)
    dev.proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    dev.proc.send_signal(signal.SIGINT)
    assert dev.wait(60) == 130, dev.describe()
    assert left_behind(docker_client, name, port) == []


def test_ctrl_c_during_the_first_build_cancels_it(
    project: tuple[Path, str, int], docker_client: docker.DockerClient
) -> None:
    root, name, port = project
    marker = f"i13-slow-{uuid.uuid4().hex[:8]}"
    (root / "app/Dockerfile").write_text(
        HTTPD_DOCKERFILE.replace("COPY site /www", f"RUN sleep 120 # {marker}\nCOPY site /www")
    )

    def build_containers() -> list[str]:
        # one list call, no inspect per container: other tests' containers come and go
        return [
            c["Id"]
            for c in docker_client.api.containers(all=True)
            if marker in str(c.get("Command", ""))
        ]

    dev = DevProcess(root)
    # the step's progress event, whichever builder runs it (BuildKit makes no build container)
    step = dev.wait_event("build_progress", service="web", timeout=120)
    eventually(
        lambda: any(marker in e.get("text", "") for e in dev.events[dev.events.index(step) :]),
        120,
        what="the slow build step running",
    )
    time.sleep(1)  # the step's process is up
    started = time.monotonic()
    dev.proc.send_signal(signal.SIGINT)  # to devloop alone (a terminal's Ctrl-C reaches all)
    assert dev.wait(60) == 130, dev.describe()
    assert time.monotonic() - started < 30  # not the 120 s the build step would take
    assert not any(e.get("event") in ("deploy", "ready") for e in dev.events)
    eventually(lambda: build_containers() == [], 30, what="a classic build's container removed")
    assert left_behind(docker_client, name, port) == []


def test_a_second_session_of_the_project_refuses_then_takes_over_from_a_dead_one(
    project: tuple[Path, str, int], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    root, name, _port = project
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    first = DevProcess(root, env=env)
    try:
        first.wait_event("ready", service="web", timeout=180)
        label = {"label": f"app.kubernetes.io/part-of={name}"}
        before = [c.id for c in docker_client.containers.list(filters=label)]

        second = DevProcess(root, env=env)
        assert second.wait(60) == 1
        assert second.stderr[-1].startswith(
            f"error: another `devloop dev` of {name} on docker is running: "
            f"pid {first.proc.pid}, since "
        ), second.describe()
        assert not any(e.get("event") == "build_started" for e in second.events)
        assert [c.id for c in docker_client.containers.list(filters=label)] == before
    finally:
        first.proc.kill()  # gone without cleaning up
        first.wait(30)

    third = DevProcess(root, env=env)
    try:
        note = third.wait_event("info", timeout=60)
        assert note["message"].startswith(
            f"the previous `devloop dev` of {name} on docker (pid {first.proc.pid}, since "
        )
        assert note["message"].endswith("is gone: taking over its containers")
        third.wait_event("ready", service="web", timeout=180)
    finally:
        assert third.interrupt() == 130


def test_a_yaml_bomb_saved_during_dev_is_refused_and_the_loop_goes_on(
    project: tuple[Path, str, int], tmp_path: Path
) -> None:
    root, _name, _port = project
    dev = DevProcess(root, env={"XDG_STATE_HOME": str(tmp_path / "state")})
    try:
        dev.wait_event("ready", service="web", timeout=180)
        config = (root / "devloop.yaml").read_text()
        bomb = "".join(
            f"x-{c}: &{c} [" + ", ".join([f"*{p}"] * 9 if p else ['"lol"'] * 9) + "]\n"
            for p, c in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
        )
        mark = dev.mark()
        (root / "devloop.yaml").write_text(config + bomb)
        err = dev.wait_event("error", since=mark, timeout=30)
        assert "alias *" in err["message"] and "(a YAML bomb?)" in err["message"]
        mark = dev.mark()
        (root / "app/site/index.html").write_text("v2\n")
        dev.wait_event("sync", since=mark, service="web", timeout=30)
    finally:
        assert dev.interrupt() == 130
