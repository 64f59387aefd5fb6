"""Without a readiness probe, `ready` on Kubernetes waits until the app listens on the ports its
container declares (as on Docker): the real `devloop dev` / `devloop run` against the test API
server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import pytest

from tests.devproc import HTTPD_DOCKERFILE, DevProcess, http_get
from tests.runtime.kubernetes.scenarios import Target, cleanup_images, devloop, write_project

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi

pytestmark = [pytest.mark.docker]

CONTEXT = "devloop-kubeapi"
PROBE = """\
          readinessProbe:
            httpGet: {path: /index.html, port: 8080}
            periodSeconds: 1
"""
LISTEN = "exec httpd -f -p 8080 -h /www"


@pytest.fixture
def target(
    name: str, kube_api: KubeApi, kube_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Target:
    path = kube_api.server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig", CONTEXT)
    return Target(path, CONTEXT, kube_namespace)


@pytest.fixture
def name(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    project = f"k12k{uuid.uuid4().hex[:8]}"
    yield project
    cleanup_images(docker_client, project)


def _without_probe(root: Path, target: Target, name: str, command: str) -> None:
    assert LISTEN in HTTPD_DOCKERFILE
    write_project(root, target, name, dockerfile=HTTPD_DOCKERFILE.replace(LISTEN, command))
    template = root / "k8s/web.yaml.j2"
    assert PROBE in template.read_text()
    template.write_text(template.read_text().replace(PROBE, ""))


def test_ready_waits_until_an_app_without_a_probe_listens(
    tmp_path: Path, target: Target, name: str
) -> None:
    _without_probe(tmp_path, target, name, f"sleep 4; {LISTEN}")
    dev = DevProcess(tmp_path, env=target.env)
    try:
        ready = dev.wait_event("ready", service="web", timeout=240)
        at = time.monotonic()
        [url] = ready["urls"]
        assert http_get(f"{url}/index.html") == (200, "v1\n"), dev.describe()
        assert time.monotonic() - at < 3, "answered only after the app started by itself"
    finally:
        code = dev.interrupt(timeout=120)
    assert code in (0, 130), dev.describe()


def test_run_of_an_app_that_never_listens_fails_naming_the_port(
    tmp_path: Path, target: Target, name: str
) -> None:
    _without_probe(tmp_path, target, name, "exec sleep 600")
    result = devloop(tmp_path, target, "run", "--timeout", "15")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "did not become ready within 15 s" in result.stderr, result.stderr
    assert "nothing listens on its port 8080" in result.stderr, result.stderr
