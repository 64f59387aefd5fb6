"""What a dev session would watch, ignore, sync and rebuild: measured on disk, nothing started.

The watched directories come from `watchroots.watch_roots`, the same walk the watcher
makes, so the counts here are the ones `devloop dev` will have.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from devloop.files.dockerignore import ContextFilter
from devloop.files.globs import glob_match
from devloop.files.ignore import in_ignored_tree
from devloop.model.project import Project, Service, SyncRule
from devloop.watch.roots import WatchRoots, watch_roots

HUGE_BYTES = 100 * 1024 * 1024
HUGE_FILES = 50_000
IGNORED_SHOWN = 5
INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_watches")


@dataclass(frozen=True)
class Tree:
    path: str  # relative to the project root
    files: int
    bytes: int


@dataclass(frozen=True)
class RuleSurvey:
    src: str
    dest: str
    then: str
    files: int  # files the rule matches right now
    example: str = ""  # where the first of them lands: 'app/x.py -> /app/app/x.py'


@dataclass(frozen=True)
class ServiceSurvey:
    name: str
    context: str
    dockerignore: bool
    context_files: int  # what the daemon is sent on a build
    context_bytes: int
    sync: tuple[RuleSurvey, ...]
    rebuild_files: int  # context files no rule matches: a change to one rebuilds
    rebuild_examples: tuple[str, ...]
    requires: tuple[str, ...]  # rebuilt when one of these is


@dataclass(frozen=True)
class Survey:
    project: str
    profiles: tuple[str, ...]
    roots: tuple[str, ...]
    watched_dirs: int
    watched_files: int
    watched_bytes: int
    ignored: tuple[Tree, ...]  # the largest ignored trees inside the build contexts
    services: tuple[ServiceSurvey, ...]
    watches_needed: int
    watches_limit: int | None
    warnings: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def survey(project: Project, services: Iterable[str]) -> Survey:
    """Measure what `devloop dev` would do for `services` (and what they require)."""
    names = project.closure(services)
    roots = watch_roots(project, names)
    files = _watched_files(roots)
    ignored = _ignored_trees(project, names, roots)
    plans = tuple(_service(project, project.services[n], files) for n in names)
    limit = inotify_limit()
    survey = Survey(
        project=project.name,
        profiles=project.profiles,
        roots=tuple(_rel(project, r) for r in roots.trees),
        watched_dirs=len(roots.dirs),
        watched_files=len(files),
        watched_bytes=sum(files.values()),
        ignored=ignored,
        services=plans,
        watches_needed=len(roots.dirs),
        watches_limit=limit,
        warnings=(),
    )
    return replace(survey, warnings=tuple(_warnings(survey)))


def inotify_limit() -> int | None:
    """The kernel's per-user inotify watch limit, or None where there is no inotify."""
    try:
        return int(INOTIFY_LIMIT.read_text().strip())
    except (OSError, ValueError):
        return None


def _watched_files(roots: WatchRoots) -> dict[str, int]:
    """Every file directly in a watched directory → its size."""
    out: dict[str, int] = {}
    for d in roots.dirs:
        try:
            with os.scandir(d) as entries:
                for e in entries:
                    if not e.is_dir(follow_symlinks=False):
                        out[e.path] = _size(e)
        except OSError:
            continue
    return out


def _size(entry: os.DirEntry[str]) -> int:
    try:
        return entry.stat(follow_symlinks=False).st_size
    except OSError:
        return 0


def _ignored_trees(project: Project, names: tuple[str, ...], roots: WatchRoots) -> tuple[Tree, ...]:
    """Directories inside a build context that get no watch, largest first."""
    contexts = [project.services[n].context for n in names]
    watched = set(roots.dirs)
    trees = []
    for d in roots.dirs:
        try:
            children = [e.path for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        for child in children:
            if child not in watched and any(Path(child).is_relative_to(c) for c in contexts):
                trees.append(_measure(project, child))
    trees.sort(key=lambda t: (-t.files, -t.bytes, t.path))
    return tuple(trees[:IGNORED_SHOWN])


def _measure(project: Project, top: str) -> Tree:
    files = size = 0
    for d, _, names in os.walk(top):
        for n in names:
            files += 1
            with contextlib.suppress(OSError):  # vanished while we counted
                size += os.lstat(os.path.join(d, n)).st_size
    return Tree(_rel(project, Path(top)), files, size)


def _service(project: Project, svc: Service, watched: dict[str, int]) -> ServiceSurvey:
    prefix = str(svc.context) + os.sep
    rels = [p[len(prefix) :].replace(os.sep, "/") for p in watched if p.startswith(prefix)]
    rels = [r for r in rels if not in_ignored_tree(r)]

    def syncs(r: SyncRule, rel: str) -> bool:
        return (
            glob_match(r.src, rel)
            and r.destination(rel) is not None
            and not any(glob_match(g, rel) for g in (*r.ignore, *svc.rebuild))
        )

    rules = []
    for r in svc.sync:
        matched = sorted(rel for rel in rels if syncs(r, rel))
        example = f"{matched[0]} -> {r.destination(matched[0])}" if matched else ""
        then = r.then if isinstance(r.then, str) else "exec"
        rules.append(RuleSurvey(r.src, r.dest, then, len(matched), example))
    flt = ContextFilter(svc.context, svc.dockerfile)
    entries = [(rel, st) for rel, st in flt.entries() if not os.path.isdir(svc.context / rel)]
    synced = {rel for rel in rels for r in svc.sync if syncs(r, rel)}
    dockerfile = (
        svc.dockerfile.relative_to(svc.context).as_posix()
        if svc.dockerfile.is_relative_to(svc.context)
        else ""
    )
    rebuild = sorted(
        rel
        for rel, _ in entries
        if rel not in synced and rel != dockerfile and not in_ignored_tree(rel)
    )
    return ServiceSurvey(
        name=svc.name,
        context=_rel(project, svc.context),
        dockerignore=(svc.context / ".dockerignore").is_file(),
        context_files=len(entries),
        context_bytes=sum(st.st_size for _, st in entries),
        sync=tuple(rules),
        rebuild_files=len(rebuild),
        rebuild_examples=tuple(rebuild[:5]),
        requires=svc.requires,
    )


def _warnings(s: Survey) -> list[str]:
    out = []
    for svc in s.services:
        out += [
            f"{svc.name}: sync rule '{r.src}' matches no file now" for r in svc.sync if not r.files
        ]
        if svc.context_bytes > HUGE_BYTES or svc.context_files > HUGE_FILES:
            out.append(
                f"{svc.name}: the build context {svc.context} is huge ({svc.context_files} files, "
                f"{_mb(svc.context_bytes)}): every build sends all of it; add a .dockerignore"
            )
        if not svc.dockerignore:
            out.append(
                f"{svc.name}: no .dockerignore in {svc.context}: everything there goes to the "
                f"build "
                "and a change to any of it rebuilds"
            )
    if s.watches_limit is not None and s.watches_needed > s.watches_limit:
        out.append(
            f"needs {s.watches_needed} inotify watches, the limit is {s.watches_limit}: raise it "
            f"with "
            f"`sudo sysctl fs.inotify.max_user_watches={max(524288, s.watches_needed * 2)}`"
        )
    return out


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def _rel(project: Project, path: Path) -> str:
    try:
        rel = path.relative_to(project.root).as_posix()
        return rel if rel != "." else "."
    except ValueError:
        return str(path)
