"""End to end: the real `devloop dev --output json` on the Docker engine, checked over HTTP and
docker exec."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.devproc import HTTPD_DOCKERFILE, DevProcess, eventually, free_port, http_get

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DOCKERFILE = HTTPD_DOCKERFILE

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
      - src: "conf/**"
        dest: /conf
        then: restart
"""


@pytest.fixture
def project(
    tmp_path: Path, docker_client: docker.DockerClient, base_image: str
) -> Iterator[tuple[Path, str, int]]:
    name = f"dt{uuid.uuid4().hex[:8]}"
    port = free_port()
    app = tmp_path / "app"
    (app / "site").mkdir(parents=True)
    (app / "conf").mkdir()
    (app / "Dockerfile").write_text(DOCKERFILE)
    (app / "site" / "index.html").write_text("v1\n")
    (app / "conf" / "message").write_text("first\n")
    (app / "README.md").write_text("outside the sync rules\n")
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


def _containers(client: docker.DockerClient, name: str) -> list[docker.models.containers.Container]:
    return client.containers.list(filters={"label": f"app.kubernetes.io/part-of={name}"})


def _serves(url: str, text: str) -> bool:
    status, body = http_get(url)
    return status == 200 and text in body


def test_dev_loop_end_to_end(
    project: tuple[Path, str, int], docker_client: docker.DockerClient
) -> None:
    root, name, port = project
    url = f"http://127.0.0.1:{port}"
    dev = DevProcess(root)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        assert _serves(f"{url}/index.html", "v1")
        [container] = _containers(docker_client, name)

        # an edit is served, through the sync channel, in the same container
        mark = dev.mark()
        (root / "app/site/index.html").write_text("v2\n")
        done = dev.wait_event("sync", since=mark, service="web")
        assert done["files"] == 1 and done["ms"] > 0
        # the file is named, and its size is the file's, not the tar's around it
        assert (done["paths"], done["bytes"]) == (["/www/index.html"], 3), done
        eventually(lambda: _serves(f"{url}/index.html", "v2"), 10, what="v2 served")
        assert [c.id for c in _containers(docker_client, name)] == [container.id]

        # a new file, then its deletion
        mark = dev.mark()
        (root / "app/site/extra.html").write_text("extra\n")
        dev.wait_event("sync", since=mark, service="web")
        eventually(lambda: _serves(f"{url}/extra.html", "extra"), 10, what="extra served")
        mark = dev.mark()
        (root / "app/site/extra.html").unlink()
        dev.wait_event("sync", since=mark, service="web", deleted=1)
        eventually(lambda: http_get(f"{url}/extra.html")[0] == 404, 10, what="extra gone")

        # then: restart restarts the process, not the container
        started = http_get(f"{url}/started.txt")[1]
        mark = dev.mark()
        (root / "app/conf/message").write_text("second\n")
        dev.wait_event("restart", since=mark, service="web")
        eventually(lambda: _serves(f"{url}/message.txt", "second"), 20, what="restarted process")
        assert http_get(f"{url}/started.txt")[1] != started
        assert [c.id for c in _containers(docker_client, name)] == [container.id]

        # killing the container by hand: a new one gets the synced files replayed
        mark = dev.mark()
        container.remove(force=True)
        dev.wait_event("sync", since=mark, service="web", replay=True, timeout=60)
        eventually(lambda: _serves(f"{url}/index.html", "v2"), 30, what="replayed edit served")
        eventually(
            lambda: _serves(f"{url}/message.txt", "second"), 20, what="replayed restart rule"
        )

        # a change outside the sync rules rebuilds; the new container serves it
        mark = dev.mark()
        (root / "app/site/index.html").write_text("v3\n")
        dev.wait_event("sync", since=mark, service="web")
        (root / "app/README.md").write_text("changed\n")
        dev.wait_event("build_done", since=mark, service="web", timeout=120)
        deployed = dev.wait_event("deploy", since=mark, service="web", timeout=120)
        dev.wait_event("ready", since=dev.events.index(deployed), service="web", timeout=120)
        eventually(lambda: _serves(f"{url}/index.html", "v3"), 30, what="v3 after rebuild")
        [rebuilt] = _containers(docker_client, name)
        assert rebuilt.id != container.id

        # a broken Dockerfile is reported; the running container keeps serving
        mark = dev.mark()
        dockerfile = root / "app/Dockerfile"
        dockerfile.write_text(dockerfile.read_text() + "RUN exit 3\n")
        err = dev.wait_event("error", since=mark, timeout=120)
        assert "RUN exit 3" in err["message"] or "exit" in err["message"]
        assert _serves(f"{url}/index.html", "v3")
        assert [c.id for c in _containers(docker_client, name)] == [rebuilt.id]
    finally:
        code = dev.interrupt()
    assert code in (0, 130), dev.describe()
    # Ctrl-C leaves nothing behind
    assert (
        docker_client.containers.list(
            all=True, filters={"label": f"app.kubernetes.io/part-of={name}"}
        )
        == []
    )
    assert docker_client.networks.list(filters={"label": f"app.kubernetes.io/part-of={name}"}) == []


def test_burst_of_2000_files_ends_equal(
    project: tuple[Path, str, int], docker_client: docker.DockerClient
) -> None:
    root, name, _ = project
    dev = DevProcess(root)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        mark = dev.mark()
        burst = root / "app/site/burst"
        for i in range(2000):
            d = burst / f"d{i % 20}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i}.txt").write_text(f"{i}\n")
        local = sorted(
            str(p.relative_to(root / "app/site")) + ":" + p.read_text().strip()
            for p in burst.rglob("*.txt")
        )

        def remote() -> list[str]:
            [c] = _containers(docker_client, name)
            out = c.exec_run(
                [
                    "sh",
                    "-c",
                    "cd /www && for f in $(find burst -name '*.txt'); do "
                    'echo "$f:$(cat $f)"; done',
                ]
            ).output.decode()
            return sorted(out.split())

        eventually(
            lambda: remote() == local, 60, 0.5, "the container's tree to equal the local tree"
        )
        syncs = [e for e in dev.events[mark:] if e.get("event") == "sync"]
        assert sum(e["files"] for e in syncs) >= 2000
        assert not [e for e in dev.events[mark:] if e.get("event") == "build_started"]
    finally:
        dev.interrupt()


def test_unknown_service_is_a_usage_error(project: tuple[Path, str, int]) -> None:
    root, _, _ = project
    dev = DevProcess(root, "nope")
    assert dev.wait(60) == 2
    assert any("unknown service" in line for line in dev.stderr), dev.describe()
    # a tool reading --output json learns why too, from stdout
    assert [(e["event"], e["exit_code"]) for e in dev.events] == [("fatal", 2)], dev.describe()
    assert os.path.exists(root / "devloop.yaml")


def test_a_port_clash_names_the_service_and_the_port(project: tuple[Path, str, int]) -> None:
    root, _, port = project
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        dev = DevProcess(root)
        try:
            error = dev.wait_event("error", timeout=180)
        finally:
            dev.interrupt()
    assert error["service"] == "web", dev.describe()
    assert f"host port {port}" in error["message"], error
    # nothing ran before: "the running version stays" would be untrue
    assert "running version stays" not in error["message"], error


NO_SHELL = """\
FROM scratch
COPY busybox /httpd
COPY site /www
CMD ["/httpd", "-f", "-p", "8080", "-h", "/www"]
"""


def test_an_image_without_a_shell_is_said_once_and_rebuilt(
    tmp_path: Path, docker_client: docker.DockerClient, base_image: str
) -> None:
    name = f"dn{uuid.uuid4().hex[:8]}"
    port = free_port()
    app = tmp_path / "app"
    (app / "site").mkdir(parents=True)
    (app / "Dockerfile").write_text(NO_SHELL)
    (app / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
    (app / "busybox").chmod(0o755)
    (app / "site" / "index.html").write_text("one\n")
    (tmp_path / "devloop.yaml").write_text(
        CONFIG.format(name=name, port=port).split('      - src: "conf')[0]
    )
    url = f"http://127.0.0.1:{port}/index.html"
    dev = DevProcess(tmp_path)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        for text in ("two\n", "three\n"):
            mark = dev.mark()
            (app / "site" / "index.html").write_text(text)
            dev.wait_event("build_done", since=mark, service="web", timeout=120)
            eventually(
                lambda t=text: _serves(url, t.strip()), 60, what=f"{text.strip()} after the rebuild"
            )
        warnings = [
            e for e in dev.events if e["event"] == "warning" and "cannot sync" in e["message"]
        ]
        assert len(warnings) == 1, dev.describe()
        assert "no sh" in warnings[0]["message"]
    finally:
        dev.interrupt()
        for c in docker_client.containers.list(
            all=True, filters={"label": f"app.kubernetes.io/part-of={name}"}
        ):
            c.remove(force=True)
        for img in docker_client.images.list(name=f"devloop-test-dev/{name}"):
            docker_client.images.remove(img.id, force=True)


def test_manual_trigger_keeps_edits_waiting(project: tuple[Path, str, int]) -> None:
    root, _, port = project
    url = f"http://127.0.0.1:{port}"
    dev = DevProcess(root, "--trigger", "manual")
    try:
        dev.wait_event("ready", service="web", timeout=180)
        mark = dev.mark()
        (root / "app/site/index.html").write_text("v2\n")
        pending = dev.wait_event("pending", since=mark, service="web", files=1)
        assert pending["paths"] == ["app/site/index.html"]
        (root / "app/site/index.html").write_text("v3\n")
        (root / "app/README.md").write_text("changed: would rebuild\n")
        dev.wait_event("pending", since=mark, service="web", files=2)
        assert _serves(f"{url}/index.html", "v1")
        kinds = {e["event"] for e in dev.events[mark:]}
        assert not kinds & {"sync", "build_started", "deploy"}, kinds
    finally:
        assert dev.interrupt() == 130


def test_an_after_sync_command_runs_in_every_replica(
    project: tuple[Path, str, int], docker_client: docker.DockerClient
) -> None:
    root, name, port = project
    config = CONFIG.format(name=name, port=port).replace(
        "values: {probe_path: /index.html}", "values: {probe_path: /index.html, replicas: 2}"
    )
    config += '      - src: "hooks/**"\n        dest: /hooks\n'
    config += "        then: {exec: \"sh -c 'cat /hooks/n >> /tmp/ran'\"}\n"
    (root / "devloop.yaml").write_text(config)
    (root / "app/hooks").mkdir()
    dev = DevProcess(root)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        assert len(_containers(docker_client, name)) == 2
        mark = dev.mark()
        (root / "app/hooks/n").write_text("one\n")

        def ran_everywhere() -> bool:
            outs = [c.exec_run(["cat", "/tmp/ran"]) for c in _containers(docker_client, name)]
            return all(o.exit_code == 0 and o.output == b"one\n" for o in outs)

        eventually(ran_everywhere, 30, what="the command run once in each replica")
        assert not [e for e in dev.events[mark:] if e.get("event") == "error"]
    finally:
        dev.interrupt()
