"""`dev` applies an edit of devloop.yaml that changes `ports:`: the new mapping is published and
reported, the old one is gone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.commands.test_run import HTTPD, _write
from tests.devproc import DevProcess, eventually, free_port, http_get

pytestmark = [pytest.mark.docker]

CONFIG = """\
name: {name}
services:
  web:
    image: i12-reload/{name}-web
    context: web
    archetype: web
    ports: ["{port}:8080"]
"""


@pytest.fixture
def name(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    project = f"i12p{uuid.uuid4().hex[:8]}"
    yield project
    label = f"app.kubernetes.io/part-of={project}"
    for c in docker_client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)
    for n in docker_client.networks.list(filters={"label": label}):
        n.remove()
    for img in docker_client.images.list(name=f"i12-reload/{project}-web"):
        docker_client.images.remove(img.id, force=True)


def test_changing_ports_while_dev_runs_publishes_the_new_mapping(tmp_path: Path, name: str) -> None:
    before, after = free_port(), free_port()
    _write(
        tmp_path,
        {
            "devloop.yaml": CONFIG.format(name=name, port=before),
            "web/Dockerfile": HTTPD,
            "web/site/index.html": "hi\n",
        },
    )
    dev = DevProcess(tmp_path)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        assert http_get(f"http://127.0.0.1:{before}/index.html") == (200, "hi\n")
        since = dev.mark()
        (tmp_path / "devloop.yaml").write_text(CONFIG.format(name=name, port=after))
        dev.wait_event(
            "ready", service="web", since=since, urls=[f"http://127.0.0.1:{after}"], timeout=120
        )
        assert http_get(f"http://127.0.0.1:{after}/index.html") == (200, "hi\n")
        eventually(
            lambda: http_get(f"http://127.0.0.1:{before}/index.html")[0] == 0,
            10,
            0.2,
            "the old port closed",
        )
        assert not dev.errors(), dev.describe()
    finally:
        dev.interrupt()
