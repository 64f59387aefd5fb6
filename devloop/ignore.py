"""Which files of a build context the daemon sees: .dockerignore, matched by the Docker SDK's own matcher."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from docker.utils.build import PatternMatcher

ALWAYS_IGNORED = (".git", ".hg", ".svn", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache")


def read_dockerignore(context: Path) -> list[str]:
    """The patterns of `context/.dockerignore`, comments and blank lines dropped."""
    try:
        text = (context / ".dockerignore").read_text(encoding="utf-8")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class ContextFilter:
    """Decides whether a context-relative path reaches the image build.

    The Dockerfile and .dockerignore themselves always do (the daemon reads them
    whatever .dockerignore says), exactly as `docker build` does.
    """

    def __init__(self, context: Path, dockerfile: Path | None = None, extra: Iterable[str] = ()) -> None:
        self.context = context
        self.patterns = [*read_dockerignore(context), *extra]
        keep = []
        if dockerfile is not None and dockerfile.is_relative_to(context):
            keep.append("!" + dockerfile.relative_to(context).as_posix())
        self._matcher = PatternMatcher([*self.patterns, *keep]) if self.patterns else None

    def excluded(self, rel: str) -> bool:
        return bool(self._matcher and self._matcher.matches(rel))

    def files(self) -> Iterator[str]:
        """Every included path (files, links and directories), relative, '/'-separated, sorted."""
        if self._matcher is None:
            yield from sorted(_walk_all(str(self.context)))
        else:
            yield from sorted(p.replace(os.sep, "/") for p in self._matcher.walk(str(self.context)))


def _walk_all(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for name in dirnames + filenames:
            yield prefix + name
