"""Open the kube context a project deploys to: kubeconfig, the local-cluster safety check, a reachability probe."""

from __future__ import annotations

import fnmatch
import ipaddress
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client as k8s
from kubernetes import config as kubeconfig
from kubernetes.config.config_exception import ConfigException

from devloop.errors import DeployError, RuntimeUnavailable
from devloop.project import Project
from devloop.runtime.kube_rest import KubeApiError, Rest

PROBE_TIMEOUT = 5.0
LOCAL_NAMES = ("minikube", "docker-desktop", "rancher-desktop", "orbstack", "colima")
LOCAL_PREFIXES = ("kind-", "k3d-")


@dataclass(frozen=True)
class Cluster:
    """A reachable API server, the context it came from, and the namespace devloop works in."""

    context: str
    server: str
    namespace: str
    rest: Rest


def connect(project: Project, context_flag: str | None) -> Cluster:
    """Load the context, refuse one that is not local unless allowed, and check the server answers."""
    path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    name = _context_name(path, context_flag or project.kube_context)
    configuration = _configuration(path, name)
    server = str(configuration.host)
    check_allowed(name, server, project.allowed_contexts, context_flag)
    rest = Rest(configuration)
    probe(rest, name)
    return Cluster(name, server, project.namespace, rest)


def is_local(context: str, server: str) -> bool:
    """A context that names a local cluster, or whose API server listens on a loopback address."""
    if context in LOCAL_NAMES or context.startswith(LOCAL_PREFIXES):
        return True
    host = urlsplit(server).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_allowed(context: str, server: str, allowed: tuple[str, ...], context_flag: str | None) -> None:
    """DeployError unless `context` is local, allowed in devloop.yaml, or named with --context."""
    if is_local(context, server) or context == context_flag:
        return
    if any(fnmatch.fnmatchcase(context, pattern) for pattern in allowed):
        return
    raise DeployError(
        f"refusing to deploy to kube context '{context}' (API server {server}): it does not look like a "
        f"local cluster. To allow it, list it in devloop.yaml under kubernetes: allowed_contexts: "
        f"[{context}], or name it on the command line with --context {context}"
    )


def probe(rest: Rest, context: str) -> None:
    """A cheap call (/version) with a short timeout, so a dead server fails before anything is built."""
    try:
        rest.get("/version", timeout=PROBE_TIMEOUT)
    except RuntimeUnavailable as exc:
        raise RuntimeUnavailable(f"kube context '{context}': {exc}") from None
    except KubeApiError as exc:
        if exc.status in (401, 403):
            raise RuntimeUnavailable(f"kube context '{context}': the API server at {rest.server} refused "
                                     f"devloop's credentials: {exc.api_message}") from None
        # any other answer still proves the server is up


def _context_name(path: str, wanted: str | None) -> str:
    try:
        contexts, current = kubeconfig.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as exc:
        raise RuntimeUnavailable(f"cannot read a kubeconfig at {path} (set KUBECONFIG): {exc}") from None
    known = [str(c["name"]) for c in contexts or []]
    if wanted is None:
        if not current:
            raise RuntimeUnavailable(f"{path} has no current context; name one with --context or "
                                     f"kubernetes: context in devloop.yaml (contexts: {', '.join(known)})")
        return str(current["name"])
    if wanted not in known:
        raise RuntimeUnavailable(f"kube context '{wanted}' is not in {path} "
                                 f"(contexts there: {', '.join(known) or 'none'})")
    return wanted


def _configuration(path: str, context: str) -> Any:
    configuration = k8s.Configuration()
    try:
        kubeconfig.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=configuration, persist_config=False)
    except (ConfigException, OSError, ValueError) as exc:
        raise RuntimeUnavailable(f"cannot load kube context '{context}' from {path}: {exc}") from None
    return configuration
