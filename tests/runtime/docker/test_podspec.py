"""Pure tests: manifests → container specs (Kubernetes command/args semantics, env, aliases,
ports)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from devloop.errors import DeployError
from devloop.model.manifest import Manifest
from devloop.model.project import Port, Project, Service
from devloop.runtime.docker.podspec import ContainerSpec, container_specs, entrypoint_and_cmd


def _project(ports: dict[str, list[Port]] | None = None) -> Project:
    def svc(name: str) -> Service:
        return Service(
            name=name,
            image=f"shop/{name}",
            context=Path("/p"),
            dockerfile=Path("/p/Dockerfile"),
            target=None,
            build_args={},
            builder=None,
            manifests=(),
            archetype="web",
            values={},
            sync=(),
            ports=tuple((ports or {}).get(name, [])),
            env={},
            requires=(),
        )

    return Project(
        name="shop",
        root=Path("/p"),
        config_path=Path("/p/devloop.yaml"),
        profiles=(),
        target="docker",
        kube_context=None,
        namespace="shop",
        allowed_contexts=(),
        rollout_timeout=60,
        registry=None,
        values={},
        ignore=(),
        services={"web": svc("web"), "api": svc("api")},
    )


def _deployment(
    name: str,
    containers: list[dict[str, Any]],
    replicas: int = 1,
    labels: dict[str, str] | None = None,
    service: str = "web",
) -> Manifest:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"labels": labels or {"app": name}},
                "spec": {"containers": containers},
            },
        },
    }
    return Manifest(obj, service, f"{name}.yaml")


def _object(kind: str, name: str, service: str = "web", **body: Any) -> Manifest:
    return Manifest(
        {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "shop"}, **body},
        service,
        f"{name}.yaml",
    )


def _one(
    manifests: list[Manifest], services: tuple[str, ...] = ("web",), **kw: Any
) -> ContainerSpec:
    specs = container_specs(_project(**kw), manifests, services)
    assert len(specs) == 1
    return specs[0]


@pytest.mark.parametrize(
    ("command", "args", "image_entry", "image_cmd", "expected"),
    [
        (None, None, ["/entry"], ["serve"], (["/entry"], ["serve"])),  # image defaults
        (
            ["/bin/app"],
            None,
            ["/entry"],
            ["serve"],
            (["/bin/app"], []),
        ),  # command drops the image CMD
        (
            None,
            ["--debug"],
            ["/entry"],
            ["serve"],
            (["/entry"], ["--debug"]),
        ),  # args keep ENTRYPOINT
        (["/bin/app"], ["-v"], ["/entry"], ["serve"], (["/bin/app"], ["-v"])),
        (None, None, None, ["sh"], ([], ["sh"])),
    ],
)
def test_command_and_args_follow_kubernetes(
    command: list[str] | None,
    args: list[str] | None,
    image_entry: list[str] | None,
    image_cmd: list[str] | None,
    expected: tuple[list[str], list[str]],
) -> None:
    c: dict[str, Any] = {"name": "web", "image": "shop/web:1"}
    if command is not None:
        c["command"] = command
    if args is not None:
        c["args"] = args
    spec = _one([_deployment("web", [c])])
    assert entrypoint_and_cmd(spec, image_entry, image_cmd) == expected


def test_env_from_literals_configmaps_and_secrets() -> None:
    secret_data = {
        "password": base64.b64encode(b"s3cret").decode(),
        "user": base64.b64encode(b"old").decode(),
    }
    manifests = [
        _object("ConfigMap", "settings", data={"MODE": "dev", "LEVEL": 3}),
        _object("Secret", "creds", data=secret_data, stringData={"user": "admin"}),
        _deployment(
            "web",
            [
                {
                    "name": "web",
                    "image": "shop/web:1",
                    "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
                    "env": [
                        {"name": "PLAIN", "value": "x"},
                        {
                            "name": "MODE",
                            "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}},
                        },
                        {
                            "name": "PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}},
                        },
                        {
                            "name": "USER",
                            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}},
                        },
                        {
                            "name": "GONE",
                            "valueFrom": {
                                "configMapKeyRef": {
                                    "name": "settings",
                                    "key": "nope",
                                    "optional": True,
                                }
                            },
                        },
                        {"name": "URL", "value": "http://$(USER)@db/$(MISSING)$$"},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                    "args": ["--mode=$(MODE)"],
                }
            ],
        ),
    ]
    spec = _one(manifests)
    env = dict(spec.env)
    assert env["PLAIN"] == "x"
    assert env["MODE"] == "dev"
    assert env["CFG_MODE"] == "dev" and env["CFG_LEVEL"] == "3"
    assert env["PASSWORD"] == "s3cret"
    assert env["USER"] == "admin"  # stringData wins over data
    assert "GONE" not in env
    assert env["URL"] == "http://admin@db/$(MISSING)$"
    assert env["POD"] == spec.name
    assert spec.args == ("--mode=dev",)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            {"configMapKeyRef": {"name": "settings", "key": "nope"}},
            "ConfigMap 'settings' has no key 'nope'",
        ),
        (
            {"secretKeyRef": {"name": "absent", "key": "k"}},
            "Secret 'absent' is not among the rendered manifests",
        ),
    ],
)
def test_a_missing_key_is_an_error_naming_it(ref: dict[str, Any], message: str) -> None:
    manifests = [
        _object("ConfigMap", "settings", data={"MODE": "dev"}),
        _deployment(
            "web", [{"name": "web", "image": "i", "env": [{"name": "X", "valueFrom": ref}]}]
        ),
    ]
    with pytest.raises(DeployError, match=message) as err:
        container_specs(_project(), manifests, ["web"])
    assert "env X" in str(err.value) and "Deployment 'web'" in str(err.value)


def test_replicas_names_aliases_and_published_ports() -> None:
    manifests = [
        _object("Service", "web", spec={"selector": {"app": "web"}}),
        _object("Service", "frontend", spec={"selector": {"tier": "front"}}),
        _object("Service", "other", spec={"selector": {"app": "api"}}),
        _deployment(
            "web",
            [{"name": "web", "image": "i", "ports": [{"containerPort": 80, "name": "http"}]}],
            replicas=3,
            labels={"app": "web", "tier": "front"},
        ),
    ]
    specs = container_specs(_project(ports={"web": [Port(18080, 80)]}), manifests, ["web"])
    assert [s.name for s in specs] == ["shop-web-web-0", "shop-web-web-1", "shop-web-web-2"]
    assert {s.aliases for s in specs} == {("frontend", "web")}
    # only one container can hold the host port: the first replica
    assert [s.publish for s in specs] == [(Port(18080, 80),), (), ()]
    assert specs[0].port_number("http") == 80


def test_only_the_named_services_and_runnable_kinds() -> None:
    manifests = [
        _deployment("web", [{"name": "web", "image": "i"}]),
        _deployment("api", [{"name": "api", "image": "j"}], service="api"),
        Manifest(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "migrate", "namespace": "shop"},
                "spec": {"template": {"spec": {"containers": [{"name": "m", "image": "k"}]}}},
            },
            "web",
            "job.yaml",
        ),
    ]
    assert [s.name for s in container_specs(_project(), manifests, ["web"])] == ["shop-web-web-0"]
    two = container_specs(_project(), manifests, ["web", "api"])
    assert sorted(s.service for s in two) == ["api", "web"]


def test_pod_fields() -> None:
    pod = Manifest(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "tool", "namespace": "shop", "labels": {"a": "b"}},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsUser": 1000, "runAsGroup": 50},
                "containers": [
                    {"name": "main", "image": "i", "workingDir": "/srv"},
                    {"name": "side", "image": "i"},
                ],
            },
        },
        "web",
        "pod.yaml",
    )
    specs = container_specs(_project(), [pod], ["web"])
    assert [s.name for s in specs] == ["shop-web-tool-0-main", "shop-web-tool-0-side"]
    assert (
        specs[0].restart == "no" and specs[0].user == "1000:50" and specs[0].working_dir == "/srv"
    )
    assert specs[0].labels == (("a", "b"),)
