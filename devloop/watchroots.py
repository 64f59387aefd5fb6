"""Which directories to watch: the selected services' trees, pruned of everything ignored."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from docker.utils.build import PatternMatcher

from devloop.globs import may_match_below
from devloop.ignore import ALWAYS_IGNORED, ContextFilter
from devloop.project import Project


@dataclass(frozen=True)
class WatchRoots:
    """`recursive`: trees with nothing ignored inside; `flat`: directories watched alone
    because some child is ignored (or because only a few files in them matter, like
    the templates and devloop.yaml). `dirs` is every directory watched: one inotify
    watch each."""

    recursive: tuple[Path, ...]
    flat: tuple[Path, ...]
    dirs: tuple[str, ...]
    files: int
    trees: tuple[Path, ...] = ()  # what a user would call the roots: contexts, template dirs

    @property
    def watches(self) -> int:
        return len(self.dirs)


class _Context:
    def __init__(self, path: Path, flt: ContextFilter, reach: list[str]) -> None:
        self.prefix = str(path) + os.sep
        self.filter = flt
        self.reach = reach  # patterns that may want something below an excluded directory


class IgnoreRules:
    """Decides which directories need no watch, and which changed paths to drop.

    A directory is skipped when its name is always ignored (.git, node_modules, ...),
    when the project's `ignore` list excludes it, or when every selected context
    holding it excludes it in .dockerignore -- but never when a `!` exception or a
    sync rule could reach a path below it.
    """

    def __init__(self, project: Project, services: Iterable[str]) -> None:
        self.root = str(project.root)
        self._project = PatternMatcher(list(project.ignore)) if project.ignore else None
        self._project_reach = [p[1:] for p in project.ignore if p.startswith("!")]
        self.contexts: list[_Context] = []
        for name in project.closure(services):
            svc = project.services[name]
            flt = ContextFilter(svc.context, svc.dockerfile)
            reach = [p[1:] for p in flt.patterns if p.startswith("!")] + [r.src for r in svc.sync]
            if svc.dockerfile.is_relative_to(svc.context):
                reach.append(svc.dockerfile.relative_to(svc.context).as_posix())
            self.contexts.append(_Context(svc.context, flt, reach))

    def dir_ignored(self, path: str, name: str) -> bool:
        if name in ALWAYS_IGNORED:
            return True
        if self.project_ignored(path, below=self._project_reach):
            return True
        holders = [c for c in self.contexts if path.startswith(c.prefix)]
        return bool(holders) and all(_excluded_tree(c, path[len(c.prefix) :]) for c in holders)

    def project_ignored(self, path: str, below: list[str] | None = None) -> bool:
        """The project's `ignore` list, matched like .dockerignore against the path relative to
        the project root, or to any selected context holding it."""
        if self._project is None:
            return False
        for base in [self.root + os.sep, *(c.prefix for c in self.contexts)]:
            if path.startswith(base):
                rel = path[len(base) :].replace(os.sep, "/")
                if self._project.matches(rel) and not any(
                    may_match_below(p, rel) for p in below or ()
                ):
                    return True
        return False


def _excluded_tree(ctx: _Context, rel: str) -> bool:
    rel = rel.replace(os.sep, "/")
    return ctx.filter.excluded(rel) and not any(may_match_below(p, rel) for p in ctx.reach)


@dataclass
class Walk:
    """One pass over directory trees: the directories to watch, and the files under them."""

    rules: IgnoreRules
    dirs: list[str] = field(default_factory=list)
    recursive: list[str] = field(default_factory=list)
    flat: list[str] = field(default_factory=list)
    files: int = 0
    paths: list[str] | None = None  # set to a list to collect the file paths too

    def tree(self, top: str) -> None:
        if self._scan(top):
            self.recursive.append(top)

    def _scan(self, d: str) -> bool:
        """Record `d` and below; True when nothing below `d` is ignored."""
        children: list[str] = []
        clean = True
        try:
            with os.scandir(d) as entries:
                for e in entries:
                    if not e.is_dir(follow_symlinks=False):
                        self.files += 1
                        if self.paths is not None:
                            self.paths.append(e.path)
                    elif self.rules.dir_ignored(e.path, e.name):
                        clean = False
                    else:
                        children.append(e.path)
        except OSError:  # vanished or unreadable: nothing to watch there
            return False
        self.dirs.append(d)
        done = [(c, self._scan(c)) for c in children]
        if clean and all(ok for _, ok in done):
            return True
        self.flat.append(d)
        self.recursive.extend(c for c, ok in done if ok)
        return False


def watch_roots(
    project: Project, services: Iterable[str], rules: IgnoreRules | None = None
) -> WatchRoots:
    """The directories to watch for `services` (and what they require), counted as it goes."""
    names = project.closure(services)
    rules = rules or IgnoreRules(project, names)
    walk = Walk(rules)
    trees = context_tops(project.services[n].context for n in names)
    for top in trees:
        walk.tree(str(top))
    watched = set(walk.dirs)
    for extra in _single_dirs(project, names):
        if str(extra) not in watched and extra.is_dir():
            watched.add(str(extra))
            walk.dirs.append(str(extra))
            walk.flat.append(str(extra))
            trees.append(extra)
    return WatchRoots(
        recursive=tuple(Path(p) for p in sorted(walk.recursive)),
        flat=tuple(Path(p) for p in sorted(walk.flat)),
        dirs=tuple(walk.dirs),
        files=walk.files,
        trees=tuple(trees),
    )


def context_tops(contexts: Iterable[Path]) -> list[Path]:
    """The contexts that are not inside another one."""
    unique = sorted(set(contexts))
    return [c for c in unique if not any(c != o and c.is_relative_to(o) for o in unique)]


def _single_dirs(project: Project, names: Iterable[str]) -> list[Path]:
    """Directories where single files matter: devloop.yaml's, the templates', outside Dockerfiles'."""
    out = [project.config_path.parent]
    for n in names:
        svc = project.services[n]
        out += [m.parent for m in svc.manifests]
        out.append(svc.dockerfile.parent)
    return list(dict.fromkeys(out))
