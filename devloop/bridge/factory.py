"""The one place that picks the target's relay for `dev --local`."""

from __future__ import annotations

from typing import Any

from devloop.bridge.env import local_env, peers
from devloop.bridge.intercept import LocalBridge, Options
from devloop.errors import ConfigError
from devloop.model.events import Emit
from devloop.model.project import Project
from devloop.render.templates import render


def open_bridge(
    project: Project,
    service: str,
    client: Any,
    target: str,
    emit: Emit,
    options: Options,
    relay_base: str | None = None,
) -> LocalBridge:
    manifests = render(project, {})
    env = local_env(project, manifests, service)
    if target == "kubernetes":
        raise ConfigError(
            "dev --local runs on the Docker target only for now (the Kubernetes relay is not "
            "built yet); --print-env works on both"
        )
    from devloop.bridge.docker import DEFAULT_BASE, DockerRelay, RelaySpec, peer_address

    network = f"devloop-{project.name}"  # the Docker runtime's project network
    relay = DockerRelay(
        client, project.name, network, env, RelaySpec(relay_base or DEFAULT_BASE, options.header)
    )
    return LocalBridge(
        project,
        env,
        peers(manifests, service),
        relay,
        lambda name, port: peer_address(client.api, network, name, port),
        emit,
        options,
    )
