"""Where the test API server refuses pods as a real cluster does (quota, security, volumes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.runtime.kubernetes.test_kubeapi import wait_for

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi

pytestmark = pytest.mark.docker

IMAGE = "devloop/busybox:latest"


@pytest.fixture
def ns(kube_api: KubeApi, kube_namespace: str, docker_client: object) -> Iterator[str]:
    name = f"i14s-{kube_namespace}"[:63].rstrip("-")
    with config.new_client_from_config(str(kube_api.kubeconfig)) as api:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    yield name
    kube_api.server.delete_namespace(name)


@pytest.fixture
def core(kube_api: KubeApi) -> Iterator[Any]:
    with config.new_client_from_config(str(kube_api.kubeconfig)) as api:
        yield client.CoreV1Api(api)


def _deployment(replicas: int, pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec},
        },
    }


def _sleeper(**extra: Any) -> dict[str, Any]:
    return {"name": "web", "image": IMAGE, "command": ["sleep", "3600"], **extra}


def test_quota_rejects_pods_with_replicaset_failure_and_events(
    kube_api: KubeApi, ns: str, core: Any
) -> None:
    core.create_namespaced_resource_quota(
        ns, {"metadata": {"name": "i14s-q"}, "spec": {"hard": {"pods": "1"}}}
    )
    with config.new_client_from_config(str(kube_api.kubeconfig)) as api:
        apps = client.AppsV1Api(api)
        spec = {"terminationGracePeriodSeconds": 0, "containers": [_sleeper()]}
        apps.create_namespaced_deployment(ns, _deployment(2, spec))

        def failure() -> Any:
            for rs in apps.list_namespaced_replica_set(ns).items:
                for c in rs.status.conditions or []:
                    if c.type == "ReplicaFailure":
                        return c
            return None

        condition = wait_for("ReplicaFailure", failure, timeout=30)
    assert condition.status == "True" and condition.reason == "FailedCreate"
    assert "exceeded quota: i14s-q, requested: pods=1, used: pods=1, limited: pods=1" in (
        condition.message
    )
    events = wait_for(
        "FailedCreate event",
        lambda: [e for e in core.list_namespaced_event(ns).items if e.reason == "FailedCreate"],
    )
    assert events[0].involved_object.kind == "ReplicaSet"
    assert events[0].message.startswith('Error creating: pods "web-')
    assert len(core.list_namespaced_pod(ns).items) == 1
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod(ns, {"metadata": {"name": "extra"}, "spec": spec})
    assert caught.value.status == 403 and "exceeded quota: i14s-q" in str(caught.value.body)
