"""The test API server's bearer tokens and RBAC, through the official `kubernetes` client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi, KubeUser


def _client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(str(kubeconfig))


def _token(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"])


def _message(exc: ApiException) -> str:
    return str(json.loads(exc.body)["message"])


def _status(call: object) -> ApiException:
    with pytest.raises(ApiException) as caught:
        call()  # type: ignore[operator]
    return caught.value


def _cm(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}}


def test_an_edit_role_in_one_namespace(
    kube_api: KubeApi, kube_user: KubeUser, kube_namespace: str
) -> None:
    ns = f"i14s-{kube_namespace}"[:63].rstrip("-")
    other = f"{ns[:55]}-other"
    kube_api.server.grant(other, "someone-else")
    try:
        with _client(kube_user("i14s-alice", namespace=ns, role="edit")) as api:
            core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
            core.create_namespaced_config_map(ns, _cm("mine"))
            assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["mine"]
            assert core.read_namespace(ns).metadata.name == ns  # `view` reads its own namespace
            denied = _status(lambda: rbac.list_namespaced_role(ns))
            assert denied.status == 403
            assert (
                'roles.rbac.authorization.k8s.io is forbidden: User "i14s-alice" cannot list '
                'resource "roles" in API group "rbac.authorization.k8s.io" in the namespace '
                f'"{ns}"'
            ) in _message(denied)
            assert _status(lambda: core.create_namespaced_config_map(other, _cm("x"))).status == 403
            denied = _status(lambda: core.read_namespace(other))
            assert denied.status == 403 and f'namespaces "{other}" is forbidden' in _message(denied)
            cluster = _status(lambda: core.list_namespace())
            assert cluster.status == 403 and "at the cluster scope" in _message(cluster)
            # discovery is open to every authenticated user
            assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    finally:
        kube_api.server.delete_namespace(other)
        kube_api.server.delete_namespace(ns)


def test_a_namespaced_role_and_self_subject_access_review(
    kube_api: KubeApi, kube_user: KubeUser, kube_namespace: str
) -> None:
    ns = f"i14s-{kube_namespace}"[:63].rstrip("-")
    kubeconfig = kube_user("i14s-bob")
    try:
        with _client(kube_api.kubeconfig) as admin:
            client.CoreV1Api(admin).create_namespace({"metadata": {"name": ns}})
            rbac = client.RbacAuthorizationV1Api(admin)
            rbac.create_namespaced_role(
                ns,
                {
                    "metadata": {"name": "cm-reader"},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "resources": ["configmaps"],
                            "verbs": ["get"],
                            "resourceNames": ["one"],
                        }
                    ],
                },
            )
            rbac.create_namespaced_role_binding(
                ns,
                {
                    "metadata": {"name": "bob"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": "cm-reader",
                    },
                    "subjects": [{"kind": "User", "name": "i14s-bob"}],
                },
            )
            client.CoreV1Api(admin).create_namespaced_config_map(ns, _cm("one"))
        with _client(kubeconfig) as api:
            core = client.CoreV1Api(api)
            assert core.read_namespaced_config_map("one", ns).metadata.name == "one"
            assert _status(lambda: core.list_namespaced_config_map(ns)).status == 403
            reviews = client.AuthorizationV1Api(api)

            def can(verb: str, resource: str, name: str = "") -> bool:
                spec = {"resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource}}
                if name:
                    spec["resourceAttributes"]["name"] = name
                review = reviews.create_self_subject_access_review({"spec": spec})
                return bool(review.status.allowed)

            assert can("get", "configmaps", "one")
            assert not can("get", "configmaps", "two")
            assert not can("list", "configmaps")
            assert not can("delete", "pods")
    finally:
        kube_api.server.delete_namespace(ns)


def test_unknown_and_revoked_tokens_are_unauthorized(
    kube_api: KubeApi, kube_user: KubeUser
) -> None:
    kubeconfig = kube_user("i14s-carol", groups=("system:masters",))
    with _client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        assert core.read_namespace("default").metadata.name == "default"
        kube_api.server.auth.revoke(_token(kubeconfig))
        rejected = _status(lambda: core.read_namespace("default"))
        assert rejected.status == 401 and json.loads(rejected.body)["reason"] == "Unauthorized"
