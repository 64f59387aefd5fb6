"""The Kubernetes scenarios against a real cluster: opt in with `pytest -m cluster`.

    DEVLOOP_TEST_KUBECONFIG=~/.kube/config      # required; the suite is skipped without it
    DEVLOOP_TEST_CONTEXT=kind-dev               # default: the kubeconfig's current context
    DEVLOOP_TEST_REGISTRY=localhost:5000        # where images go when the cluster cannot see the
                                                # local
                                                # Docker
                                                # engine
                                                # (not
                                                # needed
                                                # for
                                                # kind/k3d/minikube,
                                                # whose CLIs devloop uses to load images)

Each test works in a fresh namespace, which it deletes afterwards. The context is named in the
test project's `allowed_contexts`, so a remote cluster is accepted: point it at a cluster you own.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from kubernetes import client as k8s
from kubernetes import config as kubeconfig

from tests.runtime.kubernetes.scenarios import (
    Target,
    cleanup_images,
    crash_diagnosis,
    delete_coverage,
    dev_loop,
    init_failure_diagnosis,
    missing_volume_diagnosis,
    non_root_diagnosis,
    pod_security_diagnosis,
    policy_kinds_coverage,
    pull_diagnosis,
    quota_diagnosis,
    write_project,
)

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def name(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    project = f"kc{uuid.uuid4().hex[:8]}"
    yield project
    cleanup_images(docker_client, project)


@pytest.fixture
def target(name: str) -> Iterator[Target]:
    path = os.environ.get("DEVLOOP_TEST_KUBECONFIG")
    if not path:
        pytest.skip("set DEVLOOP_TEST_KUBECONFIG to run the real-cluster suite")
    context = (
        os.environ.get("DEVLOOP_TEST_CONTEXT")
        or kubeconfig.list_kube_config_contexts(path)[1]["name"]
    )
    t = Target(
        Path(path).expanduser(),
        context,
        f"devloop-test-{uuid.uuid4().hex[:6]}",
        os.environ.get("DEVLOOP_TEST_REGISTRY") or None,
    )
    yield t
    core = t.core()
    try:
        core.delete_namespace(t.namespace, _preload_content=False)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if t.namespace not in [n.metadata.name for n in core.list_namespace().items]:
            return
        time.sleep(1)


def test_dev_loop(tmp_path: Path, target: Target, name: str) -> None:
    port = write_project(tmp_path, target, name)
    dev_loop(tmp_path, target, name, port)


def test_crashing_container_is_diagnosed(tmp_path: Path, target: Target, name: str) -> None:
    crash_diagnosis(tmp_path, target, name)


def test_image_that_cannot_be_pulled_is_named(tmp_path: Path, target: Target, name: str) -> None:
    pull_diagnosis(tmp_path, target, name)


def test_delete_covers_other_namespaces_and_cluster_scoped_kinds(
    tmp_path: Path, target: Target, name: str
) -> None:
    delete_coverage(tmp_path, target, name)


def test_a_quota_that_refuses_pods_ends_the_rollout_wait(
    tmp_path: Path, target: Target, name: str
) -> None:
    quota_diagnosis(tmp_path, target, name)


@pytest.mark.parametrize(
    "scenario",
    [init_failure_diagnosis, missing_volume_diagnosis, non_root_diagnosis, pod_security_diagnosis],
    ids=["init-container", "missing-configmap-volume", "run-as-non-root", "pod-security"],
)
def test_pods_that_cannot_start_end_the_rollout_wait_with_their_reason(
    tmp_path: Path, target: Target, name: str, scenario: Any
) -> None:
    scenario(tmp_path, target, name)


def test_policy_kinds_are_pruned_and_deleted(tmp_path: Path, target: Target, name: str) -> None:
    policy_kinds_coverage(tmp_path, target, name)
