"""End to end, on both watchers: directory re-creations in a tight loop and editor save styles
end with the container's tree equal to the local one, and no temp file in it."""

from __future__ import annotations

import os
import shutil
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
    image: i16-watch/{name}
    context: app
    archetype: web
    ports: ["{port}:8080"]
    values: {{probe_path: /index.html}}
    sync:
      - src: "site/**"
        dest: /www
"""


@pytest.fixture(params=["inotify", "watchfiles"])
def project(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    base_image: str,
) -> Iterator[tuple[Path, str, str]]:
    name = f"i16{uuid.uuid4().hex[:8]}"
    app = tmp_path / "app"
    (app / "site").mkdir(parents=True)
    (app / "conf").mkdir()
    (app / "conf" / "message").write_text("m\n")
    (app / "Dockerfile").write_text(HTTPD_DOCKERFILE)
    (app / "README.md").write_text("a build input of the image\n")
    (app / "site" / "index.html").write_text("v1\n")
    (tmp_path / "devloop.yaml").write_text(CONFIG.format(name=name, port=free_port()))
    yield tmp_path, name, str(request.param)
    label = f"app.kubernetes.io/part-of={name}"
    for c in docker_client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)
    for n in docker_client.networks.list(filters={"label": label}):
        n.remove()
    for img in docker_client.images.list(name=f"i16-watch/{name}"):
        docker_client.images.remove(img.id, force=True)


def _local(site: Path) -> list[str]:
    return sorted(
        f"{p.relative_to(site).as_posix()}:{p.read_text().strip()}"
        for p in site.rglob("*")
        if p.is_file()
    )


def _remote(client: docker.DockerClient, name: str) -> list[str]:
    [c] = client.containers.list(filters={"label": f"app.kubernetes.io/part-of={name}"})
    script = (
        "cd /www && for f in $(find . -type f ! -name started.txt ! -name message.txt); do "
        'echo "${f#./}:$(cat $f)"; done'
    )
    return sorted(c.exec_run(["sh", "-c", script]).output.decode().split())


def _equal(client: docker.DockerClient, name: str, site: Path) -> None:
    eventually(
        lambda: _remote(client, name) == _local(site),
        30,
        0.3,
        "the container's /www to equal the local site/",
    )


def test_directories_recreated_in_a_tight_loop_end_equal(
    project: tuple[Path, str, str], docker_client: docker.DockerClient
) -> None:
    root, name, kind = project
    site = root / "app/site"
    dev = DevProcess(root, env={"DEVLOOP_WATCHER": kind})
    try:
        dev.wait_event("ready", service="web", timeout=180)
        for i in range(40):
            for sub in ("a", "b/c"):
                d = site / sub
                shutil.rmtree(d, ignore_errors=True)
                time.sleep((i % 6) / 1000)  # 0-5 ms between the delete and the re-creation
                d.mkdir(parents=True)
                for j in range(3):
                    (d / f"f{j}.txt").write_text(f"{i}-{j}")
        _equal(docker_client, name, site)
        # and the re-created directories are still watched
        (site / "a/after.txt").write_text("after")
        (site / "b/c/after.txt").write_text("after")
        _equal(docker_client, name, site)
        assert not dev.errors(), dev.describe()
    finally:
        dev.interrupt()


def _vscode(path: Path, text: str) -> None:
    with open(path, "r+") as f:  # write in place
        f.truncate(0)
        f.write(text)


def _vim(path: Path, text: str) -> None:
    backup = path.with_name(path.name + "~")
    os.rename(path, backup)
    path.write_text(text)
    os.unlink(backup)


def _jetbrains(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + "___jb_tmp___")
    old = path.with_name(path.name + "___jb_old___")
    tmp.write_text(text)
    os.rename(path, old)
    os.rename(tmp, path)
    os.unlink(old)


def test_editor_save_styles_sync_the_final_content_only(
    project: tuple[Path, str, str], docker_client: docker.DockerClient
) -> None:
    root, name, kind = project
    site = root / "app/site"
    dev = DevProcess(root, env={"DEVLOOP_WATCHER": kind})
    try:
        dev.wait_event("ready", service="web", timeout=180)
        for i, save in enumerate([_vscode, _vim, _jetbrains] * 3):
            save(site / "index.html", f"v{i}-{save.__name__}")
            _equal(docker_client, name, site)
        syncs = [e for e in dev.events if e.get("event") == "sync"]
        assert syncs
        assert not dev.errors(), dev.describe()
    finally:
        dev.interrupt()
