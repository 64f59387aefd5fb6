"""End to end on the Kubernetes target: the real `devloop dev` / `devloop run` against the test API
server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import pytest
import yaml

from tests.devproc import DevProcess, free_port
from tests.runtime.kubernetes.scenarios import (
    Target,
    cleanup_images,
    crash_diagnosis,
    dev_loop,
    devloop,
    pending_diagnosis,
    probe_diagnosis,
    pull_diagnosis,
    write_project,
)

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi

pytestmark = [pytest.mark.docker]

# Not kind-*: a kind context makes the builder run `kind load`; a loopback server is local enough.
CONTEXT = "devloop-kubeapi"


@pytest.fixture
def target(
    name: str, kube_api: KubeApi, kube_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Target:
    # `name` first: its images are removed after the namespace (and the pods using them) is gone
    path = kube_api.server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig", CONTEXT)
    return Target(path, CONTEXT, kube_namespace)


@pytest.fixture
def name(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    project = f"kt{uuid.uuid4().hex[:8]}"
    yield project
    cleanup_images(docker_client, project)


@pytest.mark.slow
def test_dev_loop(tmp_path: Path, target: Target, name: str) -> None:
    port = write_project(tmp_path, target, name)
    dev_loop(tmp_path, target, name, port)


@pytest.mark.slow
def test_crashing_container_is_diagnosed(tmp_path: Path, target: Target, name: str) -> None:
    crash_diagnosis(tmp_path, target, name)


@pytest.mark.slow
def test_image_that_cannot_be_pulled_is_named(tmp_path: Path, target: Target, name: str) -> None:
    pull_diagnosis(tmp_path, target, name)


@pytest.mark.slow
def test_failing_readiness_probe_is_diagnosed(tmp_path: Path, target: Target, name: str) -> None:
    probe_diagnosis(tmp_path, target, name)


@pytest.mark.slow
def test_unschedulable_pod_is_diagnosed(tmp_path: Path, target: Target, name: str) -> None:
    pending_diagnosis(tmp_path, target, name)


def _kubeconfig(path: Path, context: str, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "clusters": [{"name": context, "cluster": {"server": server}}],
                "users": [{"name": context, "user": {"token": "t"}}],
                "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            }
        )
    )
    return path


def _fails_before_building(root: Path, target: Target, *args: str) -> str:
    dev = DevProcess(root, *args, env=target.env)
    code = dev.wait(60)
    kinds = [e.get("event") for e in dev.events]
    assert code == 1, dev.describe()
    assert "build_started" not in kinds, dev.describe()
    return "\n".join(dev.stderr)


def test_unreachable_api_server_fails_before_building(tmp_path: Path, name: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    target = Target(_kubeconfig(tmp_path / "kubeconfig", CONTEXT, closed), CONTEXT, "ns")
    write_project(tmp_path, target, name)
    err = _fails_before_building(tmp_path, target)
    assert f"kube context '{CONTEXT}'" in err and "cannot reach the Kubernetes API server" in err, (
        err
    )
    assert closed in err, err


def test_missing_context_fails_before_building(tmp_path: Path, name: str) -> None:
    target = Target(
        _kubeconfig(tmp_path / "kubeconfig", "other", "http://127.0.0.1:1"), CONTEXT, "ns"
    )
    write_project(tmp_path, target, name)
    err = _fails_before_building(tmp_path, target)
    assert f"kube context '{CONTEXT}' is not in" in err and "other" in err, err


def test_non_local_context_is_refused_unless_allowed(tmp_path: Path, name: str) -> None:
    remote = "https://k8s.example.invalid:6443"
    target = Target(_kubeconfig(tmp_path / "kubeconfig", "prod", remote), "prod", "ns")
    write_project(tmp_path, target, name)
    config = tmp_path / "devloop.yaml"
    config.write_text(config.read_text().replace("allowed_contexts: [prod], ", ""))
    err = _fails_before_building(tmp_path, target)
    assert "refusing to deploy to kube context 'prod'" in err, err
    assert "allowed_contexts" in err and "--context prod" in err, err

    # named on the command line, it passes the check (and then fails on the unreachable server)
    err = _fails_before_building(tmp_path, target, "--context", "prod")
    assert "refusing" not in err and "cannot reach" in err, err


def test_delete_removes_what_devloop_applied(tmp_path: Path, target: Target, name: str) -> None:
    from tests.runtime.kubernetes.scenarios import applied

    write_project(tmp_path, target, name)
    result = devloop(tmp_path, target, "run", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    assert sorted(applied(target, name)) == ["ConfigMap/web-extra", "Deployment/web", "Service/web"]
    result = devloop(tmp_path, target, "delete")
    assert result.returncode == 0, result.stderr
    assert "deleted 3 object(s)" in result.stdout, result.stdout
    assert applied(target, name) == []
