"""Deliver a built image where it will run: push it to a registry, or load it into a local cluster."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import docker
import requests
from docker.utils import parse_repository_tag

from devloop.build_output import BuildLog
from devloop.errors import BuildError
from devloop.registry import RegistryError, manifest_digest, registry_of, short_reason

# kube contexts whose nodes use the local Docker engine's images directly
SAME_DAEMON = ("docker-desktop", "rancher-desktop", "orbstack", "colima")


def push(client: docker.DockerClient, ref: str, on_line: Callable[[str], None]) -> str | None:
    """Push `ref`; the pushed manifest's digest (from the push stream, else the registry)."""
    repo, tag = parse_repository_tag(ref)
    digest: str | None = None
    try:
        for chunk in client.api.push(repo, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise RegistryError(registry_of(ref), short_reason(str(chunk["error"])))
            digest = (chunk.get("aux") or {}).get("Digest") or digest
            if chunk.get("status") and not chunk.get("progressDetail"):
                on_line(" ".join(str(chunk[k]) for k in ("id", "status") if chunk.get(k)))
    except docker.errors.APIError as exc:
        raise RegistryError(registry_of(ref), short_reason(str(exc.explanation or exc))) from None
    except requests.RequestException as exc:
        raise BuildError(f"cannot push {ref}: lost the Docker engine: {exc}") from None
    return digest or manifest_digest(ref)


def load_command(kube_context: str, ref: str) -> list[str] | None:
    """The CLI that puts `ref` into the local cluster `kube_context`; None when nothing is needed."""
    if kube_context.startswith("kind-"):
        return ["kind", "load", "docker-image", "--name", kube_context.removeprefix("kind-"), ref]
    if kube_context.startswith("k3d-"):
        return ["k3d", "image", "import", "-c", kube_context.removeprefix("k3d-"), ref]
    if kube_context == "minikube":
        return ["minikube", "image", "load", ref]
    return None


def is_local_cluster(kube_context: str) -> bool:
    return kube_context in SAME_DAEMON or load_command(kube_context, "x") is not None


def load(kube_context: str, ref: str, on_line: Callable[[str], None]) -> bool:
    """Load `ref` into the cluster of `kube_context` when it needs it; True when a CLI ran."""
    argv = load_command(kube_context, ref)
    if argv is None:
        return False
    what = f"cannot load {ref} into the cluster of kube context {kube_context}"
    if shutil.which(argv[0]) is None:
        raise BuildError(
            f"{what}: the '{argv[0]}' CLI is not on PATH (install it, or set `registry` in devloop.yaml)"
        )
    log = BuildLog(on_line)
    try:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"{what}: {' '.join(argv)}: {exc}") from None
    log.feed((proc.stdout + proc.stderr).decode(errors="replace") + "\n")
    if proc.returncode != 0:
        raise BuildError(
            log.failure(what, f"`{' '.join(argv)}` exited with code {proc.returncode}")
        )
    return True
