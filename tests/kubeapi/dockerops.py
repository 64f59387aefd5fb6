"""Docker objects behind pods: names, labels, per-namespace networks, images, cleanup."""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any

import docker
import docker.errors

LABEL = "devloop.kubeapi"
SERVER_LABEL = "devloop.kubeapi.server"


def _clean(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text)


def explain(exc: Exception) -> str:
    """The daemon's own words for a Docker failure."""
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc)


def has_registry_host(image: str) -> bool:
    first = image.split("/", 1)[0]
    return "/" in image and ("." in first or ":" in first or first == "localhost")


class Docker:
    """One server's view of the Docker Engine: everything it makes carries its labels."""

    def __init__(self, server_id: str, client: docker.DockerClient | None = None) -> None:
        self.server_id = server_id
        self.client = client or docker.from_env(max_pool_size=64, timeout=120)
        self.api = self.client.api
        self._net_lock = threading.Lock()

    def labels(self, **extra: str) -> dict[str, str]:
        return {LABEL: "1", SERVER_LABEL: self.server_id} | {
            f"{LABEL}.{k}": v for k, v in extra.items()
        }

    def name(self, *parts: str) -> str:
        return _clean("-".join(("kubeapi", self.server_id, *parts)))

    def network(self, namespace: str) -> str:
        """The namespace's network, created on first use."""
        name = self.name(namespace)
        with self._net_lock:
            if not self.api.networks(names=[name]):
                self.api.create_network(
                    name, driver="bridge", labels=self.labels(namespace=namespace)
                )
        return name

    def remove_network(self, namespace: str) -> None:
        name = self.name(namespace)
        with self._net_lock:
            for net in self.api.networks(names=[name]):
                # Still in use by a container being removed: teardown sweeps it.
                with contextlib.suppress(docker.errors.APIError):
                    self.api.remove_network(net["Id"])

    def image(self, ref: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.api.inspect_image(ref)
            return result
        except docker.errors.ImageNotFound:
            return None

    def pull(self, ref: str) -> None:
        """Pull `ref`; raise docker.errors.APIError with the daemon's reason on failure."""
        repo, tag = ref, None
        last = ref.rsplit("/", 1)[-1]
        if "@" not in last and ":" in last:
            repo, tag = ref.rsplit(":", 1)
        self.api.pull(repo, tag=tag or ("latest" if "@" not in ref else None))

    def remove_container(self, ident: str) -> None:
        try:
            self.api.remove_container(ident, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in explain(exc):
                raise

    def cleanup(self) -> None:
        """Remove every container and network this server made."""
        selector = {"label": f"{SERVER_LABEL}={self.server_id}"}
        for c in self.api.containers(all=True, filters=selector):
            self.remove_container(c["Id"])
        for net in self.api.networks(filters=selector):
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_network(net["Id"])
