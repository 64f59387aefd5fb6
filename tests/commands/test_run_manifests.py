"""`devloop run` with a project's own plain manifests (a Skaffold user's `k8s/*.yaml`): the
image references naming a built service get the tag devloop built."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.commands.test_run import HTTPD, _devloop, _write
from tests.devproc import free_port, http_get

pytestmark = [pytest.mark.docker]

CONFIG = """\
name: {name}
services:
  web:
    image: i12-manifests/{name}-web
    context: web
    manifests: ["k8s/*.yaml"]
    ports: ["{port}:8080"]
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: i12-manifests/{name}-web
          ports: [{{containerPort: 8080}}]
"""


@pytest.fixture
def name(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    project = f"i12m{uuid.uuid4().hex[:8]}"
    yield project
    label = f"app.kubernetes.io/part-of={project}"
    for c in docker_client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)
    for n in docker_client.networks.list(filters={"label": label}):
        n.remove()
    for img in docker_client.images.list(name=f"i12-manifests/{project}-web"):
        docker_client.images.remove(img.id, force=True)


def test_run_deploys_the_built_tag_where_a_manifest_names_the_bare_image(
    tmp_path: Path, name: str, docker_client: docker.DockerClient
) -> None:
    port = free_port()
    _write(
        tmp_path,
        {
            "devloop.yaml": CONFIG.format(name=name, port=port),
            "k8s/deployment.yaml": DEPLOYMENT.format(name=name),
            "web/Dockerfile": HTTPD,
            "web/site/index.html": "plain manifests\n",
        },
    )
    rendered = _devloop(tmp_path, "render")
    assert rendered.returncode == 0, rendered.stderr
    tag = next(
        line.split(" -> ")[1]
        for line in rendered.stdout.splitlines()
        if line.startswith("#   spec.template.spec.containers[0].image:")
    )
    result = _devloop(tmp_path, "--output", "json", "run", "--timeout", "120")
    assert result.returncode == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(e["event"] == "ready" for e in events), result.stdout
    assert http_get(f"http://127.0.0.1:{port}/index.html") == (200, "plain manifests\n")
    [c] = docker_client.containers.list(filters={"label": f"app.kubernetes.io/part-of={name}"})
    assert c.attrs["Config"]["Image"] == tag  # the tag render names is the one run deployed
    deleted = _devloop(tmp_path, "delete")
    assert deleted.returncode == 0, deleted.stderr
