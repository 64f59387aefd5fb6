"""Open the kube context a project deploys to: the local-cluster safety check and a reachability
probe."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from devloop.clients.kubeconfig import configuration, context_name, is_local
from devloop.errors import DeployError, RuntimeUnavailable
from devloop.model.project import Project
from devloop.runtime.kubernetes.rest import KubeApiError, Rest

PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Cluster:
    """A reachable API server, the context it came from, and the namespace devloop works in."""

    context: str
    server: str
    namespace: str
    rest: Rest


def connect(project: Project, context_flag: str | None) -> Cluster:
    """Load the context, refuse one that is not local unless allowed, and check the server
    answers."""
    name = context_name(context_flag or project.kube_context)
    cfg = configuration(name)
    server = str(cfg.host)
    check_allowed(name, server, project.allowed_contexts, context_flag)
    rest = Rest(cfg, reload=lambda: configuration(name))
    probe(rest, name)
    return Cluster(name, server, project.namespace, rest)


def check_allowed(
    context: str, server: str, allowed: tuple[str, ...], context_flag: str | None
) -> None:
    """DeployError unless `context` is local, allowed in devloop.yaml, or named with --context."""
    if is_local(context, server) or context == context_flag:
        return
    if any(fnmatch.fnmatchcase(context, pattern) for pattern in allowed):
        return
    raise DeployError(
        f"refusing to deploy to kube context '{context}' (API server {server}): it does not look "
        f"like a local cluster. To allow it, list it in devloop.yaml under kubernetes: "
        f"allowed_contexts: [{context}], or name it on the command line with --context {context}"
    )


def probe(rest: Rest, context: str) -> str:
    """A cheap call (/version) with a short timeout, so a dead server fails before anything is
    built; the server's version when it says."""
    try:
        info = rest.get("/version", timeout=PROBE_TIMEOUT)
    except RuntimeUnavailable as exc:
        raise RuntimeUnavailable(f"kube context '{context}': {exc}") from None
    except KubeApiError as exc:
        if exc.status in (401, 403):
            raise RuntimeUnavailable(
                f"kube context '{context}': the API server at {rest.server} refused "
                f"devloop's credentials: {exc.api_message}"
            ) from None
        return "?"  # any other answer still proves the server is up
    return str(info.get("gitVersion", "?")) if isinstance(info, dict) else "?"
