"""Errors devloop raises, and the exit code each maps to at the CLI boundary."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class DevloopError(Exception):
    """Any failure devloop reports to the user as `error: <message>`."""

    exit_code = EXIT_FAILURE


class ConfigError(DevloopError):
    """devloop.yaml (or a flag that selects part of it) is wrong: exit 2, nothing done."""

    exit_code = EXIT_USAGE


class TemplateError(DevloopError):
    """A manifest template failed to render, or rendered something that is not an object."""

    exit_code = EXIT_USAGE


class BuildError(DevloopError):
    """An image build, push or load failed."""


class DeployError(DevloopError):
    """Deploying, or waiting for a deployment to become ready, failed."""

    def __init__(self, message: str, service: str | None = None) -> None:
        super().__init__(message)
        self.service = service  # the service whose deploy failed, when one can be named


class SyncError(DevloopError):
    """Copying files into a running container failed."""


class RuntimeUnavailable(DevloopError):
    """The Docker engine or the Kubernetes API server cannot be reached."""
