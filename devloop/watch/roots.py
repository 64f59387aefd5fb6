"""Which directories to watch: the selected services' trees, pruned of everything ignored."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from devloop.files.ignore import PathRules, context_tops
from devloop.model.project import Project


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


@dataclass
class Walk:
    """One pass over directory trees: the directories to watch, and the files under them."""

    rules: PathRules
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
    project: Project, services: Iterable[str], rules: PathRules | None = None
) -> WatchRoots:
    """The directories to watch for `services` (and what they require), counted as it goes."""
    names = project.closure(services)
    rules = rules or PathRules(project, names)
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


def _single_dirs(project: Project, names: Iterable[str]) -> list[Path]:
    """Directories where single files matter: devloop.yaml's, the templates', outside
    Dockerfiles'."""
    out = [project.config_path.parent]
    for n in names:
        svc = project.services[n]
        out += [m.parent for m in svc.manifests]
        out.append(svc.dockerfile.parent)
    return list(dict.fromkeys(out))
