"""End to end, faults injected for real: a container stopped by `docker kill`, a destination the
container's user cannot write, a full /dev/shm. Nothing is dropped silently: the user is told,
and the container's tree ends equal to the local one without another save."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.devproc import HTTPD_DOCKERFILE, DevProcess, eventually, free_port

pytestmark = [pytest.mark.docker]  # about 7 s each: not slow

CONFIG = """\
name: {name}
services:
  web:
    image: i13-recovery/{name}
    context: app
    archetype: web
    ports: ["{port}:8080"]
    values: {{probe_path: /index.html}}
    sync:
      - src: "site/**"
        dest: /www
"""

# httpd as an unprivileged user that owns /www: root in the container would write anywhere
NOBODY_DOCKERFILE = """\
FROM devloop/busybox:latest
COPY --chown=65534:65534 site /www
COPY conf /conf
COPY README.md /README.md
USER 65534
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


def _project(tmp_path: Path, dockerfile: str) -> tuple[Path, str]:
    name = f"i13r{uuid.uuid4().hex[:8]}"
    app = tmp_path / "app"
    (app / "site" / "sub").mkdir(parents=True)
    (app / "conf").mkdir()
    (app / "conf" / "message").write_text("m\n")
    (app / "Dockerfile").write_text(dockerfile)
    (app / "README.md").write_text("a build input of the image\n")
    (app / "site" / "index.html").write_text("v1\n")
    (app / "site" / "sub" / "a.txt").write_text("a\n")
    (tmp_path / "devloop.yaml").write_text(CONFIG.format(name=name, port=free_port()))
    return tmp_path, name


def _cleanup(client: docker.DockerClient, name: str) -> None:
    label = f"app.kubernetes.io/part-of={name}"
    for c in client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)
    for n in client.networks.list(filters={"label": label}):
        n.remove()
    for img in client.images.list(name=f"i13-recovery/{name}"):
        client.images.remove(img.id, force=True)


@pytest.fixture
def project(
    tmp_path: Path, docker_client: docker.DockerClient, base_image: str
) -> Iterator[tuple[Path, str]]:
    root, name = _project(tmp_path, HTTPD_DOCKERFILE)
    yield root, name
    _cleanup(docker_client, name)


@pytest.fixture
def nobody_project(
    tmp_path: Path, docker_client: docker.DockerClient, base_image: str
) -> Iterator[tuple[Path, str]]:
    root, name = _project(tmp_path, NOBODY_DOCKERFILE)
    yield root, name
    _cleanup(docker_client, name)


def _local(site: Path) -> dict[str, str]:
    return {
        p.relative_to(site).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in site.rglob("*")
        if p.is_file()
    }


def _running(client: docker.DockerClient, name: str) -> list[docker.models.containers.Container]:
    return client.containers.list(filters={"label": f"app.kubernetes.io/part-of={name}"})


def _remote(client: docker.DockerClient, name: str) -> dict[str, str] | None:
    running = _running(client, name)
    if len(running) != 1:
        return None
    code, out = running[0].exec_run(
        [
            "sh",
            "-c",
            "cd /www && find . -type f ! -name started.txt ! -name message.txt -exec md5sum {} +",
        ]
    )
    if code != 0:
        return None
    tree = {}
    for line in out.decode().splitlines():
        digest, _, path = line.partition("  ")
        tree[path.removeprefix("./")] = digest
    return tree


def _equal(client: docker.DockerClient, name: str, site: Path) -> bool:
    return _remote(client, name) == _local(site)


def test_edits_after_docker_kill_reach_the_container_started_again(
    project: tuple[Path, str], docker_client: docker.DockerClient
) -> None:
    root, name = project
    site = root / "app" / "site"
    dev = DevProcess(root)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        mark = dev.mark()
        (site / "index.html").write_text("v2\n")
        dev.wait_event("sync", since=mark, service="web")
        [container] = _running(docker_client, name)

        mark = dev.mark()
        container.kill()  # SIGKILL: Exited (137); the engine's restart policy ignores it
        # a burst while it is down (and while it comes back)
        for i in range(300):
            d = site / "burst" / f"d{i % 10}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i}.txt").write_text(f"{i}\n")
        (site / "index.html").write_text("v3\n")
        (site / "sub" / "a.txt").unlink()

        # the user is told, and the same container runs again with everything
        told = dev.wait_event("warning", since=mark, service="web", timeout=60)
        assert "no" in told["message"] and "running" in told["message"], told
        eventually(
            lambda: _equal(docker_client, name, site),
            90,
            0.5,
            "the container's tree to equal the local tree after docker kill",
        )
        [again] = _running(docker_client, name)
        assert again.id == container.id
        assert not dev.errors(), dev.describe()

        # and the loop goes on syncing into it
        mark = dev.mark()
        (site / "after.txt").write_text("after\n")
        dev.wait_event("sync", since=mark, service="web", timeout=60)
        eventually(lambda: _equal(docker_client, name, site), 30, 0.5, "the edit after")
    finally:
        dev.interrupt()


def test_a_destination_made_writable_again_gets_the_file_without_another_save(
    nobody_project: tuple[Path, str], docker_client: docker.DockerClient
) -> None:
    root, name = nobody_project
    site = root / "app" / "site"
    dev = DevProcess(root)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        [container] = _running(docker_client, name)
        assert container.exec_run(["chmod", "555", "/www/sub"], user="root").exit_code == 0

        mark = dev.mark()
        (site / "sub" / "a.txt").write_text("changed while read-only\n")
        (site / "sub" / "new.txt").write_text("new while read-only\n")
        err = dev.wait_event("error", since=mark, service="web", timeout=60)
        assert "sync to" in err["message"] and "again" in err["message"], err
        assert not _equal(docker_client, name, site)

        # writable again: the file arrives with no save
        mark = dev.mark()
        assert container.exec_run(["chmod", "755", "/www/sub"], user="root").exit_code == 0
        dev.wait_event("info", since=mark, service="web", timeout=60)
        eventually(
            lambda: _equal(docker_client, name, site),
            60,
            0.5,
            "the failed sync to arrive once /www/sub is writable",
        )
    finally:
        dev.interrupt()


def test_a_full_dev_shm_falls_back_to_streaming(
    project: tuple[Path, str], docker_client: docker.DockerClient
) -> None:
    root, name = project
    site = root / "app" / "site"
    dev = DevProcess(root)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        [container] = _running(docker_client, name)
        # the agent's scratch file lives in /dev/shm (64 MiB by default): fill it
        container.exec_run(["sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M 2>/dev/null"])
        shm = container.exec_run(["ls", "-a", "/dev/shm"]).output.decode()
        assert ".devloop-sync." in shm, shm
        for i in range(3):
            mark = dev.mark()
            (site / "index.html").write_text(f"written with /dev/shm full {i}\n")
            (site / "sub" / f"b{i}.txt").write_text(f"{i}\n")
            dev.wait_event("sync", since=mark, service="web", timeout=60)
            eventually(
                lambda: _equal(docker_client, name, site),
                60,
                0.5,
                "the batch to arrive through the streaming path",
            )
        # the agent left its full scratch space for the streaming path
        shm = container.exec_run(["ls", "-a", "/dev/shm"]).output.decode()
        assert ".devloop-sync." not in shm, shm
        assert not dev.errors(), dev.describe()
    finally:
        dev.interrupt()
