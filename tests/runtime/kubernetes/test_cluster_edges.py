"""devloop against what real clusters impose (issue 14): prune and delete from the record of what
devloop applied (under a namespaced `edit` Role, across namespaces and cluster-scoped kinds),
manifests validated before they are applied."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import pytest

from tests.runtime.kubernetes.scenarios import (
    EXTRA,
    Target,
    applied,
    cleanup_images,
    delete_coverage,
    devloop,
    quota_diagnosis,
    write_project,
)

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi, KubeFault, KubeUser

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def name(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    project = f"i14c{uuid.uuid4().hex[:8]}"
    yield project
    cleanup_images(docker_client, project)


@pytest.fixture
def namespace(name: str, kube_api: KubeApi, kube_namespace: str) -> Iterator[str]:
    # `name` first: its images are removed after the namespace (and its pods) is gone
    ns = f"i14c-{kube_namespace}"[:50].rstrip("-")
    yield ns
    kube_api.server.delete_namespace(ns)
    kube_api.server.delete_namespace(f"{ns}-other")


def test_run_and_delete_under_an_edit_role(
    tmp_path: Path, kube_user: KubeUser, namespace: str, name: str
) -> None:
    kubeconfig = kube_user(f"i14c-{name}", namespace=namespace, role="edit")
    target = Target(kubeconfig, "devloop-kubeapi", namespace)
    write_project(tmp_path, target, name)
    result = devloop(tmp_path, target, "run", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    assert sorted(applied(target, name)) == ["ConfigMap/web-extra", "Deployment/web", "Service/web"]

    # the ConfigMap removed from the templates is pruned by the next run, with no list calls
    template = tmp_path / "k8s/web.yaml.j2"
    template.write_text(template.read_text().replace(EXTRA, ""))
    result = devloop(tmp_path, target, "run", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    assert sorted(applied(target, name)) == ["Deployment/web", "Service/web"]

    result = devloop(tmp_path, target, "delete")
    assert result.returncode == 0, result.stderr
    assert "deleted 2 object(s)" in result.stdout, result.stdout
    assert applied(target, name) == []


def test_delete_covers_other_namespaces_and_cluster_scoped_kinds(
    tmp_path: Path, kube_api: KubeApi, namespace: str, name: str
) -> None:
    kubeconfig = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", "devloop-kubeapi")
    target = Target(kubeconfig, "devloop-kubeapi", namespace)
    delete_coverage(tmp_path, target, name)


def test_manifests_a_server_rejects_fail_before_applying(
    tmp_path: Path, kube_api: KubeApi, namespace: str, name: str
) -> None:
    kubeconfig = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", "devloop-kubeapi")
    target = Target(kubeconfig, "devloop-kubeapi", namespace)
    write_project(tmp_path, target, name)
    template = tmp_path / "k8s/web.yaml.j2"
    template.write_text(
        template.read_text().replace("  replicas: 1\n", '  replicas: "1"\n  bogus: true\n')
    )
    result = devloop(tmp_path, target, "run", "--timeout", "60")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "would be rejected by the API server" in result.stderr, result.stderr
    assert "Deployment/web: spec: unknown field 'bogus'" in result.stderr, result.stderr
    assert "spec.replicas" in result.stderr, result.stderr
    assert applied(target, name) == []


def test_api_errors_during_dev_are_reported_and_retried(
    tmp_path: Path, kube_api: KubeApi, kube_fault: KubeFault, namespace: str, name: str
) -> None:
    from tests.devproc import DevProcess, eventually
    from tests.kubeapi.faults import Rule
    from tests.runtime.kubernetes.scenarios import pods

    target = Target(kube_fault.kubeconfig, "devloop-kubeapi", namespace)
    write_project(tmp_path, target, name)
    dev = DevProcess(tmp_path, env=target.env)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        [first] = pods(target, name)
        # the list of the service's pods answers 500 four times (not the pod watch)
        kube_fault.front.add(
            Rule(
                "status",
                status=500,
                method="GET",
                path=r"^(?!.*watch=true).*/pods\?.*service(%3D|=)web",
                times=4,
            )
        )
        mark = dev.mark()
        target.core().delete_namespaced_pod(
            first.metadata.name, namespace, grace_period_seconds=0, _preload_content=False
        )
        error = dev.wait_event("error", since=mark, timeout=60)
        assert "500" in error["message"] and "retrying in" in error["message"], error
        dev.wait_event("ready", since=mark, service="web", timeout=120)
        eventually(lambda: len(pods(target, name)) == 1, 60, what="the new pod")
        assert dev.proc.poll() is None, dev.describe()
    finally:
        code = dev.interrupt(timeout=120)
    assert code in (0, 130), dev.describe()
    assert applied(target, name) == []


def test_a_quota_that_refuses_pods_ends_the_rollout_wait_with_its_reason(
    tmp_path: Path, kube_api: KubeApi, namespace: str, name: str
) -> None:
    kubeconfig = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", "devloop-kubeapi")
    target = Target(kubeconfig, "devloop-kubeapi", namespace)
    quota_diagnosis(tmp_path, target, name)


def test_run_waits_for_a_terminating_namespace(
    tmp_path: Path, kube_api: KubeApi, namespace: str, name: str
) -> None:
    import threading

    kubeconfig = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", "devloop-kubeapi")
    target = Target(kubeconfig, "devloop-kubeapi", namespace)
    write_project(tmp_path, target, name)
    target.core().create_namespace({"metadata": {"name": namespace}})
    kube_api.server.hold_terminating(namespace)  # a previous `kubectl delete ns` still finishing
    threading.Timer(4.0, kube_api.server.release_namespace, (namespace,)).start()
    result = devloop(tmp_path, target, "run", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    assert f"namespace {namespace} is still terminating; waiting" in result.stderr, result.stderr
    assert sorted(applied(target, name)) == ["ConfigMap/web-extra", "Deployment/web", "Service/web"]
