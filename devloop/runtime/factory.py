"""Pick and open the runtime a command works on: the Docker engine or a Kubernetes cluster."""

from __future__ import annotations

import docker

from devloop.build.deliver import ImageTarget, LocalEngine
from devloop.clients.kubeconfig import current_context
from devloop.model.project import Project
from devloop.runtime.base import Runtime


def target_of(project: Project, context_flag: str | None) -> str:
    """docker or kubernetes: `auto` means Kubernetes only when a context is named."""
    if project.target != "auto":
        return project.target
    return "kubernetes" if (context_flag or project.kube_context) else "docker"


def image_target(project: Project, context_flag: str | None) -> ImageTarget:
    """Where images go when not pushed, without connecting to a cluster (`devloop build`)."""
    if target_of(project, context_flag) != "kubernetes":
        return LocalEngine()
    from devloop.runtime.kubernetes.images import ClusterImages

    return ClusterImages(context_flag or project.kube_context or current_context())


def open_runtime(
    project: Project,
    client: docker.DockerClient,
    *,
    session: str,
    dev: bool,
    context_flag: str | None = None,
) -> Runtime:
    if target_of(project, context_flag) == "kubernetes":
        from devloop.runtime.kubernetes.runtime import KubernetesRuntime

        return KubernetesRuntime(
            project, session=session, dev=dev, context_flag=context_flag, docker=client
        )
    from devloop.runtime.docker.runtime import DockerRuntime

    return DockerRuntime(project, client, session, dev=dev)
