"""`ready` means the app answers: without a readiness probe, `run` waits until the published
port accepts connections, not only until the container runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.commands.test_run import _devloop, _write
from tests.devproc import free_port, http_get

pytestmark = [pytest.mark.docker]

SLOW_START = """\
FROM devloop/busybox:latest
COPY site /www
CMD ["sh", "-c", "echo warming up; sleep 4; exec httpd -f -p 8080 -h /www"]
"""
CONFIG = """\
name: {name}
services:
  web:
    image: i12-ready/{name}-web
    context: web
    archetype: web
    ports: ["{port}:8080"]
    values: {{probe: none}}
"""


@pytest.fixture
def name(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    project = f"i12r{uuid.uuid4().hex[:8]}"
    yield project
    label = f"app.kubernetes.io/part-of={project}"
    for c in docker_client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)
    for n in docker_client.networks.list(filters={"label": label}):
        n.remove()
    for img in docker_client.images.list(name=f"i12-ready/{project}-web"):
        docker_client.images.remove(img.id, force=True)


def test_run_without_a_readiness_probe_waits_until_the_port_answers(
    tmp_path: Path, name: str
) -> None:
    port = free_port()
    _write(
        tmp_path,
        {
            "devloop.yaml": CONFIG.format(name=name, port=port),
            "web/Dockerfile": SLOW_START,
            "web/site/index.html": "listening\n",
        },
    )
    result = _devloop(tmp_path, "run", "--timeout", "120")
    assert result.returncode == 0, result.stdout + result.stderr
    # the moment run says ready, the app answers (no retry)
    assert http_get(f"http://127.0.0.1:{port}/index.html") == (200, "listening\n")
    assert _devloop(tmp_path, "delete").returncode == 0
