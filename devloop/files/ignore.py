"""The one answer to "does this path count": editor temp files, trees no one syncs or builds from
(.git, node_modules, ...), the project's `ignore` list, and each context's .dockerignore.

Built once per project (and again when a .dockerignore changes), then asked by the watcher
(which directories need no watch, which events to drop), the planner, the survey and `init`.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from pathlib import Path

from docker.utils.build import PatternMatcher

from devloop.files.dockerignore import ContextFilter
from devloop.files.globs import may_match_below
from devloop.model.project import Project

ALWAYS_IGNORED = (
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
)
# Editors' scratch files: vim's swap files and its 4913 probe, backups, emacs locks, IDE temp files.
TEMP_FILES = (
    "*.swp",
    "*.swx",
    "*~",
    ".#*",
    "4913",
    "*___jb_tmp___",
    "*___jb_old___",
    ".goutputstream-*",
)


def is_temp(name: str) -> bool:
    """An editor's scratch file: never synced, never a reason to rebuild."""
    return any(fnmatch.fnmatchcase(name, pat) for pat in TEMP_FILES)


def in_ignored_tree(rel: str) -> bool:
    """`rel` ('/'-separated) lies in a tree that is always ignored (.git, node_modules, ...)."""
    return any(part in ALWAYS_IGNORED for part in rel.split("/"))


def context_tops(contexts: Iterable[Path]) -> list[Path]:
    """The contexts that are not inside another one."""
    unique = sorted(set(contexts))
    return [c for c in unique if not any(c != o and c.is_relative_to(o) for o in unique)]


class _Context:
    def __init__(self, path: Path, flt: ContextFilter, reach: list[str]) -> None:
        self.prefix = str(path) + os.sep
        self.filter = flt
        self.reach = reach  # patterns that may want something below an excluded directory


class PathRules:
    """Whether a path counts, for the selected services of `project` (and what they require).

    A directory needs no watch when its name is always ignored, when the project's `ignore`
    list excludes it, or when every selected context holding it excludes it in .dockerignore;
    but never when a `!` exception or a sync rule could reach a path below it.
    """

    def __init__(self, project: Project, services: Iterable[str]) -> None:
        self.names = project.closure(services)
        self.root = str(project.root)
        self._project = PatternMatcher(list(project.ignore)) if project.ignore else None
        self._project_reach = [p[1:] for p in project.ignore if p.startswith("!")]
        self.filters: dict[str, ContextFilter] = {}
        self._contexts: list[_Context] = []
        for name in self.names:
            svc = project.services[name]
            flt = ContextFilter(svc.context, svc.dockerfile)
            self.filters[name] = flt
            reach = [p[1:] for p in flt.patterns if p.startswith("!")] + [r.src for r in svc.sync]
            if svc.dockerfile.is_relative_to(svc.context):
                reach.append(svc.dockerfile.relative_to(svc.context).as_posix())
            self._contexts.append(_Context(svc.context, flt, reach))
        self._tops = [
            str(t) + os.sep for t in context_tops(project.services[n].context for n in self.names)
        ]

    def counts(self, path: str | Path) -> bool:
        """False for a path no service can care about: an editor's temp file, a path in an
        always-ignored tree of a build context, or one the project's `ignore` list names."""
        p = str(path)
        if is_temp(os.path.basename(p)):
            return False
        top = self.top_of(p)
        if top is not None and in_ignored_tree(p[len(top) :].replace(os.sep, "/")):
            return False
        return not self.project_ignored(p)

    def excluded(self, service: str, rel: str) -> bool:
        """`rel` (relative to the service's context) is excluded by its .dockerignore."""
        flt = self.filters.get(service)
        return flt is not None and flt.excluded(rel)

    def dir_ignored(self, path: str, name: str) -> bool:
        """Directory `path` (named `name`) needs no watch: nothing below it can count."""
        if name in ALWAYS_IGNORED:
            return True
        if self.project_ignored(path, below=self._project_reach):
            return True
        holders = [c for c in self._contexts if path.startswith(c.prefix)]
        return bool(holders) and all(_excluded_tree(c, path[len(c.prefix) :]) for c in holders)

    def project_ignored(self, path: str, below: list[str] | None = None) -> bool:
        """The project's `ignore` list, matched like .dockerignore against the path relative to
        the project root, or to any selected context holding it."""
        if self._project is None:
            return False
        for base in [self.root + os.sep, *(c.prefix for c in self._contexts)]:
            if path.startswith(base):
                rel = path[len(base) :].replace(os.sep, "/")
                if self._project.matches(rel) and not any(
                    may_match_below(p, rel) for p in below or ()
                ):
                    return True
        return False

    def top_of(self, path: str) -> str | None:
        """The outermost selected build context holding `path` (with a trailing separator)."""
        return next((t for t in self._tops if path.startswith(t)), None)


def _excluded_tree(ctx: _Context, rel: str) -> bool:
    rel = rel.replace(os.sep, "/")
    return ctx.filter.excluded(rel) and not any(may_match_below(p, rel) for p in ctx.reach)
