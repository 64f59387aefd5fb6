"""The one interface the dev loop talks to, whatever runs the containers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from devloop.build.deliver import ImageTarget
from devloop.errors import SyncError
from devloop.model.events import Emit
from devloop.model.manifest import Manifest
from devloop.model.project import Project


@dataclass(frozen=True)
class Instance:
    """One running container of a service: a Docker container, or a container in a pod."""

    service: str
    id: str  # Docker container id, or '<namespace>/<pod>/<container>'
    name: str  # what a person recognises: the container or pod name
    image: str
    generation: str  # changes whenever the process restarts or the container is replaced


class StreamClosed(SyncError):
    """The stream ended or broke (the process exited, the container went away)."""


class StreamTimeout(SyncError):
    """No answer arrived in time; the stream's state is unknown."""


class Transport(Protocol):
    """A bidirectional byte stream to a process running in a container (stdin / stdout)."""

    def send(self, data: bytes) -> None:
        """Write all of `data` to the process's stdin; raise StreamClosed if the stream is gone."""

    def readline(self, timeout: float) -> bytes:
        """The next line of stdout without its newline; StreamClosed on EOF, StreamTimeout after
        `timeout`."""

    def close(self) -> None: ...


class Runtime(Protocol):
    """Deploys rendered manifests and gives access to the containers they run."""

    name: str  # "docker" or "kubernetes": for messages, never for branching
    project: Project  # session reloads of devloop.yaml replace it
    images: ImageTarget  # where built images go when they are not pushed

    def deploy(self, manifests: Sequence[Manifest], services: Collection[str]) -> None:
        """Make what `manifests` describe for `services` run; replace containers whose spec
        changed."""

    def wait_ready(
        self, services: Collection[str], timeout: float, cancel: threading.Event | None = None
    ) -> None:
        """Return when every service runs (and passes its readiness probe); else raise DeployError
        with a diagnosis."""

    def instances(self, service: str) -> list[Instance]:
        """The running containers of `service` (only ready ones on Kubernetes)."""

    def open_stream(self, instance: Instance, argv: Sequence[str]) -> Transport:
        """Start `argv` in the container with stdin and stdout attached."""

    def exec(
        self, instance: Instance, argv: Sequence[str], timeout: float = 30.0
    ) -> tuple[int, bytes]:
        """Run `argv` in the container to completion: (exit code, combined output)."""

    def restart_process(self, instance: Instance) -> None:
        """Restart the main process in place (dev mode runs it under a supervisor); same
        container."""

    def watch_instances(self, on_change: Callable[[str], None], stop: threading.Event) -> None:
        """In the background, call on_change(service) whenever a container of it starts, restarts or
        goes."""

    def watch_crashes(self, emit: Emit, stop: threading.Event) -> None:
        """In the background, emit a Crashed event whenever a container of a service exits or
        restarts without devloop asking (not for a redeploy, a teardown or an in-place restart)."""

    def follow_logs(self, emit: Emit, stop: threading.Event) -> None:
        """In the background, emit a Log event per line of every container, following
        replacements."""

    def forward_ports(self, emit: Emit, stop: threading.Event) -> dict[str, list[str]]:
        """Make each service's `ports` reachable on 127.0.0.1; service → URLs."""

    def published_urls(self) -> dict[str, list[str]]:
        """service → URLs that answer without devloop running (published ports); {} when none do."""

    def teardown(self) -> None:
        """Remove what this session created (and stop background work)."""

    def close(self) -> None:
        """Stop background work and leave what runs (`--keep`)."""

    def delete_all(self) -> int:
        """Remove everything labelled as this project's; the number of objects removed."""
