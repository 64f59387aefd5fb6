"""Which devloop.yaml a command uses: `-f FILE`, else the nearest one here or in a parent."""

from __future__ import annotations

from pathlib import Path

from devloop.model.project import CONFIG_NAME


def config_file(directory: Path) -> Path:
    """The config `load(directory)` reads: `directory` itself when it names a file (`-f`)."""
    return directory if directory.is_file() else directory / CONFIG_NAME


def nearest(start: Path) -> Path | None:
    """The directory of the nearest devloop.yaml at or above `start`.

    The search stops at a repository's root (the directory holding `.git`) or at `/`, as
    compose does for compose.yaml: a config outside the repository is someone else's.
    """
    for directory in (start, *start.parents):
        if (directory / CONFIG_NAME).is_file():
            return directory
        if (directory / ".git").exists():
            return None
    return None
