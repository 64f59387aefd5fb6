"""Pick and open the runtime a command works on: the Docker engine or a Kubernetes cluster."""

from __future__ import annotations

import docker

from devloop.build_engine import connect
from devloop.project import Project
from devloop.runtime.base import Runtime


def target_of(project: Project, context_flag: str | None) -> str:
    """docker or kubernetes: `auto` means Kubernetes only when a context is named."""
    if project.target != "auto":
        return project.target
    return "kubernetes" if (context_flag or project.kube_context) else "docker"


def docker_client() -> docker.DockerClient:
    """The local Docker engine, or a clear RuntimeUnavailable saying where devloop looked."""
    return connect(timeout=300.0)


def open_runtime(project: Project, client: docker.DockerClient, *, session: str, dev: bool,
                 context_flag: str | None = None) -> Runtime:
    if target_of(project, context_flag) == "kubernetes":
        from devloop.runtime.kubernetes import KubernetesRuntime

        return KubernetesRuntime(project, session=session, dev=dev, context_flag=context_flag, docker=client)
    from devloop.runtime.docker import DockerRuntime

    return DockerRuntime(project, client, session, dev=dev)
