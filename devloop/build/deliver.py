"""Deliver a built image where it will run: push it to a registry, or hand it to the runtime's
ImageTarget (load it into a local cluster, or nothing when the runtime uses this engine)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import docker
import requests
from docker.utils import parse_repository_tag

from devloop.clients.registry import credentials, manifest_digest, push_error, registry_of
from devloop.errors import BuildError

OnLine = Callable[[str], None]


class ImageTarget(Protocol):
    """Where the images of a runtime come from when they are not pushed (each runtime has one)."""

    def load(self, ref: str, on_line: OnLine) -> str | None:
        """Make `ref`, built on the local engine, visible to the runtime; what was done, or None."""

    def unreachable(self) -> str | None:
        """Why images that stay on the local engine may not reach the runtime, or None."""


class LocalEngine:
    """The runtime runs on the engine that built the image: nothing to deliver."""

    def load(self, ref: str, on_line: OnLine) -> str | None:
        return None

    def unreachable(self) -> str | None:
        return None


def push(
    client: docker.DockerClient,
    ref: str,
    on_line: Callable[[str], None],
    insecure: Iterable[str] = (),
) -> str | None:
    """Push `ref` with the credentials the registry check used; the pushed manifest's digest
    (from the push stream, else the registry)."""
    repo, tag = parse_repository_tag(ref)
    # the same auth config the existence check sent: Docker's config, resolved once by docker.auth
    auth_config = credentials(registry_of(ref)).auth_config or None
    digest: str | None = None
    try:
        for chunk in client.api.push(
            repo, tag=tag, stream=True, decode=True, auth_config=auth_config
        ):
            if "error" in chunk:
                raise push_error(ref, str(chunk["error"]))
            digest = (chunk.get("aux") or {}).get("Digest") or digest
            if chunk.get("status") and not chunk.get("progressDetail"):
                on_line(" ".join(str(chunk[k]) for k in ("id", "status") if chunk.get(k)))
    except docker.errors.APIError as exc:
        raise push_error(ref, str(exc.explanation or exc)) from None
    except requests.RequestException as exc:
        raise BuildError(f"cannot push {ref}: lost the Docker engine: {exc}") from None
    return digest or manifest_digest(ref, insecure)
