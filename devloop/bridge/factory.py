"""The one place that picks the target's relay for `dev --local`."""

from __future__ import annotations

from importlib import resources
from typing import Any

from devloop.bridge.env import local_env, peers
from devloop.bridge.intercept import LocalBridge, Options, Relay
from devloop.model.events import Emit
from devloop.model.project import Project
from devloop.render.templates import render
from devloop.runtime.base import Runtime

DEFAULT_BASE = "devloop/python:3"


def relay_source() -> str:
    """The relay's code, as its container runs it."""
    return resources.files("devloop.bridge").joinpath("relay.py").read_text(encoding="utf-8")


def open_bridge(
    project: Project,
    service: str,
    runtime: Runtime,
    client: Any,
    emit: Emit,
    options: Options,
    relay_base: str | None = None,
) -> LocalBridge:
    manifests = render(project, {})
    base = relay_base or DEFAULT_BASE
    relay: Relay
    cluster = getattr(runtime, "cluster", None)
    if cluster is not None:  # the Kubernetes runtime
        from devloop.runtime.kubernetes.envsources import cluster_sources
        from devloop.runtime.kubernetes.relay import KubeRelay

        env = local_env(
            project, manifests, service, cluster_sources(cluster.rest, cluster.namespace)
        )

        ports = sorted({p.target for p in env.services} | set(env.ports))
        relay = KubeRelay(
            cluster.rest,
            cluster.namespace,
            project.name,
            service,
            env.workload,
            dict(env.labels),
            ports,
            base,
            relay_source(),
            options.header,
            sorted({p.service for p in env.services}),
        )
    else:
        from devloop.bridge.docker import DockerRelay, RelaySpec

        env = local_env(project, manifests, service)
        network = str(getattr(runtime, "network", f"devloop-{project.name}"))
        relay = DockerRelay(client, project.name, network, env, RelaySpec(base, options.header))
    return LocalBridge(project, env, peers(manifests, service), relay, emit, options)
