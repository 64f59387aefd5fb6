"""Field validation and Warning headers of the test API server, over plain HTTP."""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

import pytest
import requests
import yaml

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi

HEADERS = {"Authorization": "Bearer devloop-test-token"}


def deployment(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "devloop/busybox:latest",
                            "env": [{"name": "A", "value": "1"}],
                            "ports": [{"containerPort": 8080}],
                        }
                    ]
                },
            },
        },
    }


@pytest.fixture
def ns(kube_api: KubeApi, kube_namespace: str) -> str:
    name = f"i14s-{kube_namespace}"[:63].rstrip("-")
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    requests.post(f"{kube_api.url}/api/v1/namespaces", json=body, headers=HEADERS, timeout=10)
    yield name
    kube_api.server.delete_namespace(name)


def _post(kube_api: KubeApi, ns: str, body: dict[str, Any], **query: str) -> requests.Response:
    url = f"{kube_api.url}/apis/apps/v1/namespaces/{ns}/deployments"
    return requests.post(url, json=body, params=query, headers=HEADERS, timeout=10)


def _apply(kube_api: KubeApi, ns: str, body: dict[str, Any], **query: str) -> requests.Response:
    url = f"{kube_api.url}/apis/apps/v1/namespaces/{ns}/deployments/web"
    return requests.patch(
        url,
        data=yaml.safe_dump(body),
        params={"fieldManager": "i14s", **query},
        headers=HEADERS | {"Content-Type": "application/apply-patch+yaml"},
        timeout=10,
    )


def test_unknown_fields_by_field_validation(kube_api: KubeApi, ns: str) -> None:
    body = deployment(ns)
    body["spec"]["bogus"] = 1
    strict = _post(kube_api, ns, body, fieldValidation="Strict")
    assert strict.status_code == 400
    assert strict.json()["message"] == 'strict decoding error: unknown field "spec.bogus"'
    applied = _apply(kube_api, ns, body, fieldValidation="Strict")
    assert applied.status_code == 500
    assert ".spec.bogus: field not declared in schema" in applied.json()["message"]
    warned = _post(kube_api, ns, body)
    assert warned.status_code == 201
    assert warned.headers["Warning"] == '299 - "unknown field \\"spec.bogus\\""'


def test_wrong_types_are_rejected_in_every_mode(kube_api: KubeApi, ns: str) -> None:
    body = deployment(ns)
    body["spec"]["replicas"] = "1"
    for mode in ("Strict", "Warn", "Ignore"):
        answer = _post(kube_api, ns, body, fieldValidation=mode)
        assert answer.status_code == 400, answer.text
        assert (
            "cannot unmarshal string into Go struct field replicas of type int32"
            in (answer.json()["message"])
        )
    applied = _apply(kube_api, ns, body)
    assert applied.status_code == 500
    assert ".spec.replicas: expected integer, got string" in applied.json()["message"]


@pytest.mark.parametrize(
    ("field", "item", "key"),
    [
        ("env", {"name": "A", "value": "2"}, '[name="A"]'),
        ("ports", {"containerPort": 8080}, '[containerPort=8080,protocol="TCP"]'),
    ],
)
def test_duplicate_list_map_keys(
    kube_api: KubeApi, ns: str, field: str, item: dict[str, Any], key: str
) -> None:
    body = deployment(ns)
    body["spec"]["template"]["spec"]["containers"][0][field].append(copy.deepcopy(item))
    applied = _apply(kube_api, ns, body)
    assert applied.status_code == 500
    assert (
        f'.spec.template.spec.containers[name="web"].{field}: duplicate entries for key {key}'
        in applied.json()["message"]
    )
    created = _post(kube_api, ns, body)
    assert created.status_code == 201
    assert f"spec.template.spec.containers[0].{field}[1]" in created.headers["Warning"]


def test_a_valid_manifest_has_no_warnings(kube_api: KubeApi, ns: str) -> None:
    answer = _apply(kube_api, ns, deployment(ns), fieldValidation="Strict")
    assert answer.status_code == 201, json.dumps(answer.json())
    assert "Warning" not in answer.headers
