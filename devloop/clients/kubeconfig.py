"""The kubeconfig: which context is current, the client configuration of a context, and whether
a context points at a cluster on this machine (the one "is local" rule)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devloop.errors import RuntimeUnavailable

# Context names local cluster tools write. Their nodes either run on this machine's Docker
# engine and see its images (SAME_ENGINE), or get images loaded by the tool's CLI.
SAME_ENGINE = ("docker-desktop", "rancher-desktop", "orbstack", "colima")
LOCAL_NAMES = ("minikube", *SAME_ENGINE)
LOCAL_PREFIXES = ("kind-", "k3d-")


def kubeconfig_path(env: Mapping[str, str] | None = None) -> str:
    """$KUBECONFIG (possibly several files joined by os.pathsep), else ~/.kube/config."""
    env = os.environ if env is None else env
    return env.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


def current_context(env: Mapping[str, str] | None = None) -> str | None:
    """The current-context of the first kubeconfig file that sets one, read without the client.

    Cheap (no Kubernetes client import): profiles are activated by it on every command.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    for p in kubeconfig_path(env).split(os.pathsep):
        try:
            data = YAML(typ="safe").load(Path(p).read_text(encoding="utf-8"))
        except (OSError, ValueError, YAMLError):
            continue
        if isinstance(data, dict) and data.get("current-context"):
            return str(data["current-context"])
    return None


def is_local(context: str, server: str | None = None) -> bool:
    """A context that names a local cluster, or whose API server listens on a loopback address."""
    if context in LOCAL_NAMES or context.startswith(LOCAL_PREFIXES):
        return True
    host = urlsplit(server or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def context_name(wanted: str | None, env: Mapping[str, str] | None = None) -> str:
    """`wanted`, checked against the kubeconfig; or the current context."""
    from kubernetes import config as kubeconfig
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig_path(env)
    try:
        contexts, current = kubeconfig.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as exc:
        raise RuntimeUnavailable(
            f"cannot read a kubeconfig at {path} (set KUBECONFIG): {exc}"
        ) from None
    known = [str(c["name"]) for c in contexts or []]
    if wanted is None:
        if not current:
            raise RuntimeUnavailable(
                f"{path} has no current context; name one with --context or "
                f"kubernetes: context in devloop.yaml (contexts: {', '.join(known)})"
            )
        return str(current["name"])
    if wanted not in known:
        raise RuntimeUnavailable(
            f"kube context '{wanted}' is not in {path} (contexts there: "
            f"{', '.join(known) or 'none'})"
        )
    return wanted


def configuration(context: str, env: Mapping[str, str] | None = None) -> Any:
    """The client Configuration (server, credentials, TLS) of `context`."""
    from kubernetes import client as k8s
    from kubernetes import config as kubeconfig
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig_path(env)
    cfg = k8s.Configuration()
    try:
        kubeconfig.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
    except (ConfigException, OSError, ValueError) as exc:
        raise RuntimeUnavailable(
            f"cannot load kube context '{context}' from {path}: {exc}"
        ) from None
    return cfg
