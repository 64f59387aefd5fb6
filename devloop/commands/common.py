"""What several commands share: service names from the command line, and a session id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from devloop.errors import ConfigError
from devloop.model.project import Project


def selected(project: Project, services: Sequence[str]) -> tuple[str, ...]:
    """The services named on the command line (all when none), checked against the config."""
    unknown = [s for s in services if s not in project.services]
    if unknown:
        raise ConfigError(
            f"unknown service(s) {', '.join(unknown)}; "
            f"devloop.yaml defines {', '.join(project.services)}"
        )
    return tuple(services) or tuple(project.services)


def new_session_id() -> str:
    return uuid.uuid4().hex[:8]
