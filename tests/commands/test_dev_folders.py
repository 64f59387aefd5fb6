"""End to end, on both watchers: renaming or deleting a folder of synced files syncs the
deletes and adds (no build, no redeploy), and the container's tree ends equal to the local one."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.devproc import HTTPD_DOCKERFILE, DevProcess, eventually, free_port

pytestmark = [pytest.mark.docker]

# a glob that names files, never the folders holding them: a folder's own path matches no rule
CONFIG = """\
name: {name}
services:
  web:
    image: i12-folders/{name}
    context: app
    archetype: web
    ports: ["{port}:8080"]
    values: {{probe_path: /index.html}}
    sync:
      - src: "site/**/*.html"
        dest: /www
        strip: site
"""


@pytest.fixture(params=["inotify", "watchfiles"])
def project(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    base_image: str,
) -> Iterator[tuple[Path, str, str]]:
    name = f"i12f{uuid.uuid4().hex[:8]}"
    app = tmp_path / "app"
    (app / "site" / "docs" / "deep").mkdir(parents=True)
    (app / "conf").mkdir()
    (app / "conf" / "message").write_text("m\n")
    (app / "Dockerfile").write_text(HTTPD_DOCKERFILE)
    (app / "README.md").write_text("a build input of the image\n")
    (app / "site" / "index.html").write_text("v1\n")
    (app / "site" / "docs" / "a.html").write_text("a\n")
    (app / "site" / "docs" / "deep" / "b.html").write_text("b\n")
    (tmp_path / "devloop.yaml").write_text(CONFIG.format(name=name, port=free_port()))
    yield tmp_path, name, str(request.param)
    label = f"app.kubernetes.io/part-of={name}"
    for c in docker_client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)
    for n in docker_client.networks.list(filters={"label": label}):
        n.remove()
    for img in docker_client.images.list(name=f"i12-folders/{name}"):
        docker_client.images.remove(img.id, force=True)


def _local(site: Path) -> list[str]:
    return sorted(
        f"{p.relative_to(site).as_posix()}:{p.read_text().strip()}"
        for p in site.rglob("*")
        if p.is_file()
    )


def _remote(client: docker.DockerClient, name: str) -> list[str] | None:
    """The container's /www, or None while it has no single running container (replaced)."""
    running = client.containers.list(filters={"label": f"app.kubernetes.io/part-of={name}"})
    if len(running) != 1:
        return None
    script = (
        "cd /www && for f in $(find . -type f ! -name started.txt ! -name message.txt); do "
        'echo "${f#./}:$(cat $f)"; done'
    )
    try:
        return sorted(running[0].exec_run(["sh", "-c", script]).output.decode().split())
    except docker.errors.APIError:
        return None


def _equal(dev: DevProcess, client: docker.DockerClient, name: str, site: Path, what: str) -> None:
    try:
        eventually(lambda: _remote(client, name) == _local(site), 30, 0.3, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{dev.describe()}") from None


def test_renaming_and_deleting_a_synced_folder_syncs_without_a_build(
    project: tuple[Path, str, str], docker_client: docker.DockerClient
) -> None:
    root, name, kind = project
    site = root / "app/site"
    dev = DevProcess(root, env={"DEVLOOP_WATCHER": kind})
    try:
        dev.wait_event("ready", service="web", timeout=180)
        since = dev.mark()
        (site / "docs").rename(site / "guide")
        _equal(dev, docker_client, name, site, "the renamed folder in the container")
        shutil.rmtree(site / "guide")
        _equal(dev, docker_client, name, site, "the deleted folder gone from the container")
        assert _local(site) == ["index.html:v1"]
        kinds = {e["event"] for e in dev.events[since:]}
        assert "sync" in kinds, dev.describe()
        assert not kinds & {"build_started", "build_done", "deploy"}, dev.describe()
        assert not dev.errors(), dev.describe()
    finally:
        dev.interrupt()
