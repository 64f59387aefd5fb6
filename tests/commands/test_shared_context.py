"""Two services sharing `context: .` with their own Dockerfiles (compose's usual layout): an
edit reaching one service never rebuilds the other, and a file no Dockerfile copies rebuilds
nothing (issue 12, item 1)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.devproc import DevProcess, eventually, free_port, http_get

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CONFIG = """\
name: {name}
services:
  web:
    image: i12-shared/{name}-web
    context: .
    dockerfile: web.Dockerfile
    archetype: web
    ports: ["{web_port}:8080"]
    values: {{probe_path: /index.html}}
    sync:
      - {{src: "web/**", dest: /www, strip: web}}
  api:
    image: i12-shared/{name}-api
    context: .
    dockerfile: api/Dockerfile
    archetype: web
    ports: ["{api_port}:8080"]
    values: {{probe_path: /index.html}}
    sync:
      - {{src: "api/site/**", dest: /www, strip: api/site}}
"""

HTTPD = """\
FROM devloop/busybox:latest
COPY {src} /www
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


@pytest.fixture
def project(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[tuple[Path, str]]:
    name = f"i12{uuid.uuid4().hex[:8]}"
    files = {
        "devloop.yaml": CONFIG.format(name=name, web_port=free_port(), api_port=free_port()),
        "web.Dockerfile": HTTPD.format(src="web"),
        "api/Dockerfile": HTTPD.format(src="api/site"),
        "web/index.html": "web v1\n",
        "api/site/index.html": "api v1\n",
        "README.md": "# shared\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    yield tmp_path, name
    label = f"app.kubernetes.io/part-of={name}"
    for c in docker_client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)
    for n in docker_client.networks.list(filters={"label": label}):
        n.remove()
    for svc in ("web", "api"):
        for img in docker_client.images.list(name=f"i12-shared/{name}-{svc}"):
            docker_client.images.remove(img.id, force=True)


def test_an_edit_to_one_service_never_rebuilds_the_other(project: tuple[Path, str]) -> None:
    root, _ = project
    dev = DevProcess(root)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        dev.wait_event("ready", service="api", timeout=180)
        port = int((root / "devloop.yaml").read_text().split('ports: ["')[1].split(":")[0])
        mark = dev.mark()
        (root / "web/index.html").write_text("web v2\n")
        dev.wait_event("sync", since=mark, service="web")
        eventually(lambda: "web v2" in http_get(f"http://127.0.0.1:{port}/index.html")[1], 10)
        (root / "README.md").write_text("# changed\n")
        (root / "shell.log").write_text("a log the user's shell wrote\n")
        time.sleep(4)  # what a rebuild would have started by now
        builds = [e for e in dev.events[mark:] if e.get("event") == "build_started"]
        assert builds == [], dev.describe()
    finally:
        code = dev.interrupt()
    assert code in (0, 130), dev.describe()
