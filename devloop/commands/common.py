"""What several commands share: the event sink for --output, and service names from the command line."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence

from devloop.errors import ConfigError
from devloop.events import Emit, JsonSink, TextSink
from devloop.project import Project
from devloop.runtime.base import Runtime


def sink(output: str) -> Emit:
    return JsonSink(sys.stdout) if output == "json" else TextSink(sys.stdout)


def selected(project: Project, services: Sequence[str]) -> tuple[str, ...]:
    """The services named on the command line (all when none), checked against the config."""
    unknown = [s for s in services if s not in project.services]
    if unknown:
        raise ConfigError(
            f"unknown service(s) {', '.join(unknown)}; devloop.yaml defines {', '.join(project.services)}"
        )
    return tuple(services) or tuple(project.services)


def new_session_id() -> str:
    return uuid.uuid4().hex[:8]


def cluster_context(runtime: Runtime) -> str | None:
    """The kube context built images must reach when they are not pushed (None on Docker)."""
    return getattr(runtime, "context", None) if runtime.name == "kubernetes" else None
