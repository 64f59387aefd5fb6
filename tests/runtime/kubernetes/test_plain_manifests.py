"""Kubernetes target, against the test API server: a manifest that names the bare image
(`image: devloop-test-k8s/<name>`, as a Skaffold user's k8s/*.yaml does) runs the tag devloop
built, the one `render` names."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import pytest

from tests.runtime.kubernetes.scenarios import (
    Target,
    cleanup_images,
    devloop,
    pods,
    write_project,
)

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi

pytestmark = [pytest.mark.docker]

CONTEXT = "devloop-kubeapi"


@pytest.fixture
def target(
    name: str, kube_api: KubeApi, kube_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Target:
    path = kube_api.server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig", CONTEXT)
    return Target(path, CONTEXT, kube_namespace)


@pytest.fixture
def name(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    project = f"kp{uuid.uuid4().hex[:8]}"
    yield project
    cleanup_images(docker_client, project)


def test_run_deploys_the_built_tag_where_the_manifest_names_the_bare_image(
    tmp_path: Path, target: Target, name: str
) -> None:
    write_project(tmp_path, target, name, image=f"devloop-test-k8s/{name}", extra="")
    rendered = devloop(tmp_path, target, "render")
    assert rendered.returncode == 0, rendered.stderr
    [replaced] = [
        line for line in rendered.stdout.splitlines() if line.startswith("#   spec.template")
    ]
    tag = replaced.split(" -> ")[1]
    field = "spec.template.spec.containers[0].image"
    assert replaced == f"#   {field}: devloop-test-k8s/{name} -> {tag}"
    result = devloop(tmp_path, target, "run", "--timeout", "180")
    assert result.returncode == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["image"] for e in events if e["event"] == "deploy"] == [tag]
    [pod] = pods(target, name)
    assert pod.spec.containers[0].image == tag
    assert devloop(tmp_path, target, "delete").returncode == 0
