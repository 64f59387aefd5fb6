"""Rendered Kubernetes manifests → one flat spec per container to run on a local engine (pure)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from devloop.errors import DeployError
from devloop.model.manifest import ANNOTATION_RESTARTED, Manifest
from devloop.model.project import Port, Project
from devloop.runtime.docker.podenv import Sources, expand, resolve_env

# Jobs and CronJobs run to completion on a schedule: not something the dev loop keeps running.
RUNNABLE = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod")
_RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}
_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]+")


@dataclass(frozen=True)
class ContainerPort:
    number: int
    name: str | None = None
    protocol: str = "TCP"


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to run one replica of one container of a workload."""

    service: str
    workload: str  # "Deployment/web"
    name: str  # the engine's container name: stable across deploys
    replica: int
    container: str  # the container's name inside the pod
    image: str
    command: tuple[str, ...] | None  # Kubernetes `command`: replaces the image's ENTRYPOINT
    args: tuple[str, ...] | None  # Kubernetes `args`: replaces the image's CMD
    env: tuple[tuple[str, str], ...]
    working_dir: str | None
    user: str | None
    ports: tuple[ContainerPort, ...]
    publish: tuple[Port, ...]  # host 127.0.0.1:local → container port
    aliases: tuple[str, ...]  # the Services whose selector picks this pod
    labels: tuple[tuple[str, str], ...]  # the pod's labels
    restart: str  # the engine's restart policy name
    restarted: str = ""  # the pod template's restarted-at annotation: a new one recreates it
    readiness: Mapping[str, Any] | None = field(default=None, compare=False)

    def port_number(self, port: int | str) -> int:
        """A probe's `port`, which may name one of the container's ports."""
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in self.ports:
            if p.name == port:
                return p.number
        raise DeployError(
            f"{self.name}: the probe names port '{port}', which the container does not declare"
        )


def container_specs(
    project: Project, manifests: Sequence[Manifest], services: Collection[str]
) -> list[ContainerSpec]:
    """One spec per replica per container of every runnable workload of `services`."""
    sources = Sources.of(manifests)
    selectors = [
        (m.namespace or "default", m.name, (m.obj.get("spec") or {}).get("selector") or {})
        for m in manifests
        if m.kind == "Service"
    ]
    specs: list[ContainerSpec] = []
    for m in manifests:
        if m.service in services and m.kind in RUNNABLE:
            specs.extend(_workload(project.name, m, sources, selectors))
    return _publish(
        specs, {s: project.services[s].ports for s in services if s in project.services}
    )


def entrypoint_and_cmd(
    spec: ContainerSpec, image_entrypoint: Sequence[str] | None, image_cmd: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """Kubernetes semantics: `command` replaces ENTRYPOINT and drops CMD; `args` replaces CMD."""
    entrypoint = list(spec.command) if spec.command is not None else list(image_entrypoint or [])
    if spec.args is not None:
        return entrypoint, list(spec.args)
    return entrypoint, [] if spec.command is not None else list(image_cmd or [])


def _workload(
    project: str, m: Manifest, sources: Sources, selectors: list[tuple[str, str, dict[str, Any]]]
) -> list[ContainerSpec]:
    namespace = m.namespace or "default"
    replicas = (
        1 if m.kind in ("DaemonSet", "Pod") else int((m.obj.get("spec") or {}).get("replicas", 1))
    )
    out = []
    for pod in m.pod_templates():
        labels = {
            str(k): str(v) for k, v in ((pod.get("metadata") or {}).get("labels") or {}).items()
        }
        aliases = tuple(
            sorted(
                name
                for ns, name, sel in selectors
                if sel and ns == namespace and all(labels.get(k) == str(v) for k, v in sel.items())
            )
        )
        containers = (pod.get("spec") or {}).get("containers") or []
        for i in range(replicas):
            for j, c in enumerate(containers):
                suffix = f"-{c.get('name') or j}" if len(containers) > 1 else ""
                name = _UNSAFE.sub("-", f"{project}-{m.service}-{m.name}-{i}{suffix}")
                out.append(_container(m, pod, c, name, i, namespace, sources, aliases, labels))
    return out


def _container(
    m: Manifest,
    pod: Mapping[str, Any],
    c: Mapping[str, Any],
    name: str,
    replica: int,
    namespace: str,
    sources: Sources,
    aliases: tuple[str, ...],
    labels: dict[str, str],
) -> ContainerSpec:
    if not c.get("image"):
        raise DeployError(
            f"{m.template}: {m.kind} '{m.name}' container '{c.get('name')}' has no image"
        )
    try:
        env = resolve_env(c, namespace, name, sources)
    except DeployError as exc:
        raise DeployError(f"{m.kind} '{m.name}' container '{c.get('name')}': {exc}") from None
    known = dict(env)
    pod_spec = pod.get("spec") or {}
    return ContainerSpec(
        service=m.service,
        workload=f"{m.kind}/{m.name}",
        name=name,
        replica=replica,
        container=str(c.get("name")),
        image=str(c["image"]),
        command=_argv(c.get("command"), known),
        args=_argv(c.get("args"), known),
        env=tuple(env),
        working_dir=c.get("workingDir") or None,
        user=_user(pod_spec, c),
        ports=tuple(
            ContainerPort(int(p["containerPort"]), p.get("name"), str(p.get("protocol", "TCP")))
            for p in c.get("ports") or []
        ),
        publish=(),
        aliases=aliases,
        labels=tuple(sorted(labels.items())),
        restart=_RESTART.get(str(pod_spec.get("restartPolicy", "Always")), "always"),
        restarted=str(
            ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_RESTARTED, "")
        ),
        readiness=c.get("readinessProbe"),
    )


def _argv(value: Any, env: Mapping[str, str]) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(expand(str(v), env) for v in value)


def _user(pod_spec: Mapping[str, Any], c: Mapping[str, Any]) -> str | None:
    ctx = {**(pod_spec.get("securityContext") or {}), **(c.get("securityContext") or {})}
    if "runAsUser" not in ctx:
        return None
    return (
        f"{ctx['runAsUser']}:{ctx['runAsGroup']}" if "runAsGroup" in ctx else str(ctx["runAsUser"])
    )


def _publish(
    specs: list[ContainerSpec], ports: Mapping[str, Sequence[Port]]
) -> list[ContainerSpec]:
    """Bind each service port on the first replica that declares the container port, else the first
    one.

    Only one container can hold a host port, so the other replicas are reachable only
    through the Service name on the project network.
    """
    bindings: dict[str, list[Port]] = {}
    for service, wanted in ports.items():
        first = [s for s in specs if s.service == service and s.replica == 0]
        for port in wanted:
            target = next(
                (s for s in first if any(p.number == port.container for p in s.ports)), None
            )
            target = target or (first[0] if first else None)
            if target is not None:
                bindings.setdefault(target.name, []).append(port)
    return [replace(s, publish=tuple(bindings.get(s.name, ()))) for s in specs]
