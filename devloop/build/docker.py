"""Build an image with the Docker SDK against the local daemon, streaming its output."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import docker
import requests

from devloop.build.output import BuildLog
from devloop.errors import BuildError
from devloop.model.project import Service


class DockerBuild:
    """The default builder: `docker build` through the Engine API (classic builder output)."""

    def __init__(self, client: docker.DockerClient, labels: Mapping[str, str]) -> None:
        self._client = client
        self._labels = dict(labels)

    def __call__(
        self, svc: Service, ref: str, build_args: Mapping[str, str], on_line: Callable[[str], None]
    ) -> None:
        log = BuildLog(on_line)
        what = f"build of {svc.name} ({ref}) failed"
        try:
            for chunk in self._client.api.build(**self._params(svc, ref, build_args)):
                _consume(chunk, log, what)
        except docker.errors.DockerException as exc:
            raise BuildError(log.failure(what, _explanation(exc))) from None
        except (requests.RequestException, OSError) as exc:
            raise BuildError(log.failure(what, f"lost the Docker engine: {exc}")) from None
        log.flush()

    def _params(self, svc: Service, ref: str, build_args: Mapping[str, str]) -> dict[str, Any]:
        inside = svc.dockerfile.is_relative_to(svc.context)
        return {
            "path": str(svc.context),
            "dockerfile": svc.dockerfile.relative_to(svc.context).as_posix()
            if inside
            else str(svc.dockerfile),
            "tag": ref,
            "buildargs": dict(build_args),
            "target": svc.target,
            # one label only: the classic builder adds a LABEL step (a container, ~0.1 s) per label
            "labels": self._labels,
            "rm": True,
            "forcerm": True,  # a failed step must not leave its container behind
            "decode": True,
        }


def _consume(chunk: dict[str, Any], log: BuildLog, what: str) -> None:
    if "stream" in chunk:
        log.feed(str(chunk["stream"]))
    elif "error" in chunk:
        detail = chunk.get("errorDetail") or {}
        raise BuildError(log.failure(what, str(detail.get("message") or chunk["error"])))
    elif "status" in chunk and not chunk.get("progressDetail"):
        log.line(" ".join(str(chunk[k]) for k in ("id", "status") if chunk.get(k)))


def _explanation(exc: docker.errors.DockerException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc)
