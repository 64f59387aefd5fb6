"""What a batch of changed files means for each service: sync, rebuild, redeploy, reload, or nothing
(pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devloop.build.inputs import InputSet
from devloop.files.globs import glob_match, may_match_below
from devloop.files.ignore import PathRules
from devloop.model.changes import Change, ChangeBatch, ChangeKind
from devloop.model.project import Project, Service, SyncRule

__all__ = [
    "Change",
    "ChangeBatch",
    "ChangeKind",
    "Plan",
    "Rebuild",
    "Redeploy",
    "ServicePlan",
    "Sync",
    "SyncFile",
    "plan",
    "replan",
]


@dataclass(frozen=True)
class SyncFile:
    rel: str  # relative to the build context, '/'-separated
    dest: str  # absolute path in the container


@dataclass(frozen=True)
class Sync:
    """The files one sync rule copies into the container, and the ones it deletes there."""

    rule: SyncRule
    copy: tuple[SyncFile, ...] = ()
    delete: tuple[SyncFile, ...] = ()


@dataclass(frozen=True)
class Rebuild:
    """Build a new image and redeploy.

    `superseded` holds the syncs the new image makes unnecessary: if the build
    fails, the old containers keep serving and the session may still apply them.
    """

    paths: tuple[str, ...] = ()  # context-relative changes the image needs
    because_of: tuple[str, ...] = ()  # required services rebuilt in this plan
    superseded: tuple[Sync, ...] = ()


@dataclass(frozen=True)
class Redeploy:
    """Re-render this service's manifests and apply them (a template changed)."""

    templates: tuple[Path, ...]


@dataclass(frozen=True)
class ServicePlan:
    name: str
    syncs: tuple[Sync, ...] = ()
    rebuild: Rebuild | None = None
    redeploy: Redeploy | None = None


@dataclass(frozen=True)
class Plan:
    """Per service what to do, in dependency order; only services with work appear.

    `reload` means devloop.yaml changed: load it again and redeploy what differs
    (see `replan`). `ignored` lists the changed paths that mean nothing.
    """

    services: tuple[ServicePlan, ...] = ()
    reload: bool = False
    ignored: tuple[Path, ...] = field(default=())

    def __bool__(self) -> bool:
        return self.reload or bool(self.services)

    def service(self, name: str) -> ServicePlan | None:
        return next((s for s in self.services if s.name == name), None)


def plan(
    project: Project,
    services: Iterable[str],
    batch: Iterable[Change],
    rules: PathRules,
    inputs: Mapping[str, InputSet] | None = None,
) -> Plan:
    """Decide, for `services` and what they require, what each change in `batch` means.

    `rules` (whether a path counts, each context's .dockerignore) is built once by the
    caller, so that this function does no I/O. `inputs` (service → the context paths its
    Dockerfile can reach) limits what rebuilds it; without it, any file of the context does.
    """
    names = project.closure(services)
    changes = list(batch)
    latest = {c.path: c.kind for c in changes}  # the last word on a path wins
    gone_dirs = {c.path for c in changes if c.directory and latest[c.path] == "deleted"}
    reload = project.config_path in latest
    per: dict[str, _Draft] = {n: _Draft() for n in names}
    used: set[Path] = {project.config_path} if reload else set()
    for path, kind in latest.items():
        # devloop.yaml means reload only, even when it sits in a build context
        if path == project.config_path or not rules.counts(path):
            continue
        for name in names:
            reach = inputs.get(name) if inputs is not None else None
            svc, draft = project.services[name], per[name]
            took = path in gone_dirs and draft.take_dir(svc, path)
            if took or draft.take(svc, rules, path, kind, reach):
                used.add(path)
    _cascade(project, names, per)
    ordered = tuple(p for n in names if (p := per[n].finish(n)) is not None)
    ignored = tuple(p for p in latest if p not in used)
    return Plan(services=ordered, reload=reload, ignored=ignored)


_BUILD_INPUTS = ("image", "context", "dockerfile", "target", "build_args", "builder", "requires")


def replan(old: Project, new: Project, services: Iterable[str]) -> Plan:
    """After devloop.yaml changed: rebuild services whose build inputs differ, redeploy the
    ones whose other settings (or the project-wide values) differ."""
    names = [n for n in new.closure(services) if n in new.services]
    shared_changed = (old.values, old.registry, old.namespace) != (
        new.values,
        new.registry,
        new.namespace,
    )
    out: list[ServicePlan] = []
    for n in names:
        before, after = old.services.get(n), new.services[n]
        if before is None or any(getattr(before, a) != getattr(after, a) for a in _BUILD_INPUTS):
            out.append(ServicePlan(n, rebuild=Rebuild()))
        elif before != after or shared_changed:
            out.append(ServicePlan(n, redeploy=Redeploy(templates=after.manifests)))
    return Plan(services=tuple(out))


class _Draft:
    """What one service has collected while the batch is walked."""

    def __init__(self) -> None:
        self.copy: dict[SyncRule, dict[str, str]] = {}
        self.delete: dict[SyncRule, dict[str, str]] = {}
        self.rebuild: list[str] = []
        self.because: list[str] = []
        self.templates: list[Path] = []

    def take(
        self,
        svc: Service,
        rules: PathRules,
        path: Path,
        kind: ChangeKind,
        reach: InputSet | None = None,
    ) -> bool:
        """Record what `path` means for `svc`; False when it means nothing to it.

        A manifest redeploys; one inside the context that the Dockerfile copies (`COPY . .`)
        is an image input too, so it rebuilds as well (its tag, as `render` names it, changed).
        """
        manifest = path in svc.manifests
        if manifest:
            self.templates.append(path)
        if path == svc.dockerfile:
            self.rebuild.append(_rel_or_name(path, svc.context))
            return True
        if not path.is_relative_to(svc.context):
            return manifest
        rel = path.relative_to(svc.context).as_posix()
        if rel == ".":
            return manifest
        if rel == ".dockerignore":
            self.rebuild.append(rel)
            return True
        if any(glob_match(g, rel) for g in svc.rebuild):
            self.rebuild.append(rel)  # named to rebuild: no sync rule takes it
            return True
        if not manifest and self._sync(svc.sync, rel, kind):
            return True
        if rules.excluded(svc.name, rel):
            return manifest
        if reach is not None and not reach.reaches(rel):
            return manifest  # no COPY/ADD of its Dockerfile can reach it
        self.rebuild.append(rel)
        return True

    def take_dir(self, svc: Service, path: Path) -> bool:
        """A deleted directory: delete it in the container for every sync rule that could have
        put files in it (a renamed or removed folder of synced files needs no image)."""
        if not path.is_relative_to(svc.context) or path == svc.context:
            return False
        rel = path.relative_to(svc.context).as_posix()
        if any(glob_match(g, rel) for g in svc.rebuild):
            return False  # named to rebuild
        hit = False
        for rule in svc.sync:
            dest = rule.destination(rel)
            if dest is None or any(glob_match(g, rel) for g in rule.ignore):
                continue
            if glob_match(rule.src, rel) or may_match_below(rule.src, rel):
                self.delete.setdefault(rule, {})[rel] = dest
                hit = True
        return hit

    def _sync(self, rules: Iterable[SyncRule], rel: str, kind: ChangeKind) -> bool:
        hit = False
        for rule in rules:
            dest = rule.destination(rel) if glob_match(rule.src, rel) else None
            if dest is None or any(glob_match(g, rel) for g in rule.ignore):
                continue
            target = self.delete if kind == "deleted" else self.copy
            target.setdefault(rule, {})[rel] = dest
            hit = True
        return hit

    def syncs(self) -> tuple[Sync, ...]:
        rules = list(dict.fromkeys([*self.copy, *self.delete]))
        return tuple(
            Sync(rule, _files(self.copy.get(rule, {})), _files(self.delete.get(rule, {})))
            for rule in rules
        )

    def finish(self, name: str) -> ServicePlan | None:
        syncs = self.syncs()
        rebuild = None
        if self.rebuild or self.because:
            rebuild = Rebuild(tuple(sorted(set(self.rebuild))), tuple(self.because), syncs)
            syncs = ()
        redeploy = Redeploy(tuple(sorted(set(self.templates)))) if self.templates else None
        if not (syncs or rebuild or redeploy):
            return None
        return ServicePlan(name, syncs=syncs, rebuild=rebuild, redeploy=redeploy)


def _cascade(project: Project, names: tuple[str, ...], per: Mapping[str, _Draft]) -> None:
    """A rebuilt image is a build arg of the services requiring it: they rebuild too.
    `names` is in dependency order, so one pass carries it down every chain."""
    rebuilt: set[str] = set()
    for n in names:
        draft = per[n]
        draft.because = [d for d in project.services[n].requires if d in rebuilt]
        if draft.rebuild or draft.because:
            rebuilt.add(n)


def _files(mapping: Mapping[str, str]) -> tuple[SyncFile, ...]:
    return tuple(SyncFile(rel, dest) for rel, dest in sorted(mapping.items()))


def _rel_or_name(path: Path, context: Path) -> str:
    return path.relative_to(context).as_posix() if path.is_relative_to(context) else str(path)
