"""The environment a service's pod would get, for the same service run as a local process."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from devloop.errors import ConfigError, DeployError
from devloop.model.manifest import Manifest
from devloop.model.project import Project
from devloop.runtime.docker.podenv import Sources, resolve_env

MASK = "********"
_SENTINEL = "\0devloop-secret\0"
RUNNABLE = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod")


@dataclass(frozen=True)
class ServicePort:
    """One port of a Service in front of a workload: what others dial, and where it lands."""

    service: str  # the Service object's name (what other pods resolve)
    port: int  # the Service's port
    target: int  # the container port it forwards to
    name: str | None = None


@dataclass(frozen=True)
class LocalEnv:
    """A service's pod environment: variables (Secrets marked), and the ports it listens on."""

    service: str
    workload: str  # "Deployment/api"
    labels: tuple[tuple[str, str], ...]  # the pod template's labels
    env: tuple[tuple[str, str], ...]
    secret: frozenset[str]  # names whose value comes (in whole or part) from a Secret
    ports: tuple[int, ...]  # the container ports
    services: tuple[ServicePort, ...]  # the Services selecting the pod

    def with_extra(self, extra: Sequence[tuple[str, str]]) -> LocalEnv:
        """The same, with `extra` variables added after (overriding) the pod's."""
        merged = dict(self.env)
        merged.update(extra)
        names = {k for k, _ in extra}
        return replace(self, env=tuple(merged.items()), secret=self.secret - names)

    def shown(self, show_secrets: bool) -> list[tuple[str, str]]:
        return [(k, v if show_secrets or k not in self.secret else MASK) for k, v in self.env]

    def exports(self, show_secrets: bool = False) -> str:
        """`export NAME=value` lines a shell (or an IDE's run configuration) reads."""
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.shown(show_secrets)]
        if self.ports:
            lines.append(f"# listens on: {', '.join(str(p) for p in self.ports)}")
        return "\n".join(lines) + "\n"


Table = Mapping[tuple[str, str], Mapping[str, str]]


def local_env(
    project: Project,
    manifests: Sequence[Manifest],
    service: str,
    cluster: tuple[Table, Table] | None = None,
) -> LocalEnv:
    """The env of `service`'s first container, as its rendered pod template gives it, plus the
    `local.env` of devloop.yaml. `cluster`: (ConfigMaps, Secrets) the cluster holds, for the
    references no rendered object answers."""
    workload = _workload(manifests, service)
    pod = workload.pod_templates()[0]
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        raise ConfigError(
            f"{workload.kind} '{workload.name}' of service '{service}' has no containers"
        )
    container = containers[0]
    namespace = workload.namespace or project.namespace or "default"
    sources = Sources.of(manifests)
    if cluster is not None:
        sources = Sources({**cluster[0], **sources.config_maps}, {**cluster[1], **sources.secrets})
    name = f"{workload.name}-local"
    try:
        env = resolve_env(container, namespace, name, sources)
        masked = dict(resolve_env(container, namespace, name, _masked(sources)))
    except DeployError as exc:
        raise ConfigError(f"service '{service}': {exc}") from None
    labels = {str(k): str(v) for k, v in ((pod.get("metadata") or {}).get("labels") or {}).items()}
    out = LocalEnv(
        service=service,
        workload=f"{workload.kind}/{workload.name}",
        labels=tuple(sorted(labels.items())),
        env=tuple(env),
        secret=frozenset(k for k, v in masked.items() if _SENTINEL in v),
        ports=tuple(int(p["containerPort"]) for p in container.get("ports") or []),
        services=tuple(_service_ports(manifests, namespace, labels)),
    )
    local = project.services[service].local
    return out.with_extra(list(local.env.items())) if local else out


def _workload(manifests: Sequence[Manifest], service: str) -> Manifest:
    for m in manifests:
        if m.service == service and m.kind in RUNNABLE and m.pod_templates():
            return m
    raise ConfigError(
        f"service '{service}' renders no workload (Deployment, Pod, ...) to run locally"
    )


def _masked(sources: Sources) -> Sources:
    secrets = {key: {k: _SENTINEL for k in data} for key, data in sources.secrets.items()}
    return Sources(sources.config_maps, secrets)


def _service_ports(
    manifests: Sequence[Manifest], namespace: str, labels: dict[str, str]
) -> list[ServicePort]:
    out = []
    for m in manifests:
        if m.kind != "Service" or (m.namespace or namespace) != namespace:
            continue
        spec: dict[str, Any] = m.obj.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector or any(labels.get(k) != str(v) for k, v in selector.items()):
            continue
        for p in spec.get("ports") or []:
            target = p.get("targetPort", p["port"])
            out.append(
                ServicePort(
                    m.name,
                    int(p["port"]),
                    int(target) if str(target).isdigit() else int(p["port"]),
                    p.get("name"),
                )
            )
    return out


def peers(manifests: Sequence[Manifest], service: str) -> list[ServicePort]:
    """The ports of every Service not in front of `service`: what the local process may dial."""
    out = []
    for m in manifests:
        if m.kind != "Service" or m.service == service:
            continue
        for p in (m.obj.get("spec") or {}).get("ports") or []:
            target = p.get("targetPort", p["port"])
            out.append(
                ServicePort(
                    m.name,
                    int(p["port"]),
                    int(target) if str(target).isdigit() else int(p["port"]),
                    p.get("name"),
                )
            )
    return out
