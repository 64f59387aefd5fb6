"""Which files of a build context the daemon sees: .dockerignore, matched by the Docker SDK's own
matcher."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from docker.utils.build import PatternMatcher

Entry = tuple[str, os.stat_result]  # context-relative '/'-separated path, its lstat


def read_dockerignore(context: Path) -> list[str]:
    """The patterns of `context/.dockerignore`, comments and blank lines dropped (as the SDK reads
    them)."""
    try:
        text = (context / ".dockerignore").read_text(encoding="utf-8")
    except OSError:
        return []
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


class ContextFilter:
    """Decides whether a context-relative path reaches the image build.

    The Dockerfile and .dockerignore themselves always do (the daemon reads them
    whatever .dockerignore says), exactly as `docker build` does. The walk follows
    `docker.utils.build.PatternMatcher.walk` (same matcher, same rule for descending
    into excluded directories) but uses scandir, so each entry costs one lstat.
    """

    def __init__(
        self, context: Path, dockerfile: Path | None = None, extra: Iterable[str] = ()
    ) -> None:
        self.context = context
        self.patterns = [*read_dockerignore(context), *extra]
        keep = []
        if dockerfile is not None and dockerfile.is_relative_to(context):
            keep.append("!" + dockerfile.relative_to(context).as_posix())
        self._matcher = PatternMatcher([*self.patterns, *keep]) if self.patterns else None
        # an excluded directory is still entered when an exception pattern may re-include inside it
        self._exceptions = (
            [p.cleaned_pattern for p in self._matcher.patterns if p.exclusion]
            if self._matcher
            else []
        )

    def excluded(self, rel: str) -> bool:
        return bool(self._matcher and self._matcher.matches(rel))

    def entries(self) -> list[Entry]:
        """Every included path (files, links and directories) with its lstat, sorted by path."""
        out: list[Entry] = []
        self._scan(str(self.context), "", out)
        out.sort(key=lambda e: e[0])
        return out

    def files(self) -> Iterator[str]:
        """Every included path (files, links and directories), relative, '/'-separated, sorted."""
        return (rel for rel, _ in self.entries())

    def _scan(self, directory: str, prefix: str, out: list[Entry]) -> None:
        try:
            it = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):  # removed while we walked
            return
        with it:
            for entry in it:
                rel = prefix + entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                excluded = self.excluded(rel)
                if not excluded:
                    out.append((rel, st))
                if stat.S_ISDIR(st.st_mode) and (not excluded or self._may_reinclude(rel)):
                    self._scan(entry.path, rel + "/", out)

    def _may_reinclude(self, rel: str) -> bool:
        return any(p.startswith(rel) for p in self._exceptions)
