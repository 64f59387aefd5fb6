"""Dev mode: run each pod container's command under devloop's supervisor, so a sync can restart it
in place."""

from __future__ import annotations

import contextlib
import copy
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import docker
import docker.errors
import requests

from devloop.model.manifest import Manifest
from devloop.runtime import supervisor
from devloop.runtime.kubernetes.rest import Obj

ANNOTATION = "devloop.dev/supervised"
# Kubernetes expands $(VAR) and turns $$ into $ in command and args; text that did not
# come from the manifest must reach the container unchanged.
_EXPANDED = re.compile(r"\$(\$|\([A-Za-z_][A-Za-z0-9_]*\))")


@dataclass(frozen=True)
class ImageCommand:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    has_shell: bool


class Supervision:
    """Wraps containers of rendered workloads; reads image defaults from the local Docker engine."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._api = client.api
        self._images: dict[str, ImageCommand | None] = {}
        self._lock = threading.Lock()

    def wrap(self, manifest: Manifest) -> Obj:
        """A copy of the object whose pod containers run under the supervisor, where that is
        possible."""
        obj = copy.deepcopy(manifest.obj)
        for pod in Manifest(obj, manifest.service, manifest.template).pod_templates():
            spec = pod.get("spec") or {}
            wrapped = [self._wrap_container(c) for c in spec.get("containers") or []]
            if any(wrapped):
                meta = pod.setdefault("metadata", {})
                meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION: "1"}
        return obj

    def _wrap_container(self, c: Obj) -> bool:
        image = self._image(str(c.get("image") or ""))
        if image is None or not image.has_shell:
            return False  # not in the local engine, or no /bin/sh: restarts replace the pod instead
        argv = _escape(image.entrypoint) if c.get("command") is None else list(c["command"])
        if c.get("args") is not None:
            argv += list(c["args"])
        elif c.get("command") is None:
            argv += _escape(image.cmd)
        if not argv:
            return False
        c["command"] = supervisor.wrap(argv)
        c.pop("args", None)
        return True

    def _image(self, ref: str) -> ImageCommand | None:
        with self._lock:
            if ref not in self._images:
                self._images[ref] = self._inspect(ref)
            return self._images[ref]

    def _inspect(self, ref: str) -> ImageCommand | None:
        try:
            cfg = self._api.inspect_image(ref).get("Config") or {}
        except (docker.errors.DockerException, requests.RequestException):
            return None
        return ImageCommand(
            tuple(cfg.get("Entrypoint") or ()), tuple(cfg.get("Cmd") or ()), self._has_shell(ref)
        )

    def _has_shell(self, ref: str) -> bool:
        """Whether /bin/sh exists in the image: asked of a created, never started, container."""
        try:
            cid = self._api.create_container(
                ref, command=["/bin/sh"], entrypoint=[], labels={"devloop.probe": "shell"}
            )["Id"]
        except (docker.errors.DockerException, requests.RequestException):
            return False
        try:
            self._api.get_archive(cid, "/bin/sh")
            return True
        except (docker.errors.DockerException, requests.RequestException):
            return False
        finally:
            with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                self._api.remove_container(cid, force=True)


def _escape(argv: Sequence[str]) -> list[str]:
    return [_EXPANDED.sub(lambda m: "$" + m.group(0), a) for a in argv]
