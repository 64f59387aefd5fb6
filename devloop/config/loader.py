"""devloop.yaml → Project: parse once, apply profiles, validate, and report errors by file:line."""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from devloop.config import profiles as profiles_
from devloop.config import yamlsource
from devloop.config.diagnostics import translate
from devloop.config.discover import config_file
from devloop.config.schema import (
    EXTENSION_KEY,
    ConfigSpec,
    ExecThen,
    LocalSpec,
    ServiceSpec,
    SyncRuleSpec,
)
from devloop.config.yamlsource import Document, Loc
from devloop.errors import ConfigError
from devloop.model.manifest import ARCHETYPES
from devloop.model.project import LocalRun, Port, Project, Service, SyncRule

__all__ = ["load"]


def load(
    directory: Path,
    profiles: Sequence[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    kube_context: str | None = None,
) -> Project:
    """Load `directory/devloop.yaml` (or `directory` itself when it is a file, from `-f`) with
    the named (or activated) profiles applied.

    Raises ConfigError naming file:line:col and the key path for anything wrong, including
    problems in profiles that are not active (unset ${VAR}s there excepted).
    """
    env = os.environ if environ is None else environ
    doc = yamlsource.load(config_file(directory).resolve(), env)
    if not isinstance(doc.data, dict):
        raise doc.error((), "the top level must be a mapping with 'name' and 'services'")
    _raise_unset(doc, None)
    base = _validate(doc, {k: v for k, v in doc.data.items() if not re.match(EXTENSION_KEY, k)})
    for name in base.profiles:  # every profile is checked, not only the chosen ones
        if _unset_in(doc, name) is None:
            _apply(doc, base, name)
    active = profiles_.choose(doc, base, profiles, env, kube_context)
    spec = base
    for name in active:
        _raise_unset(doc, name)
        spec = _apply(doc, spec, name)
    project = _project(doc, spec, active)
    _check(doc, project, spec, active)
    return project


def _unset_in(doc: Document, profile: str | None) -> ConfigError | None:
    """An unset ${VAR} in `profile`, or (None) outside every profile."""
    for loc, _name in doc.unset:
        in_profiles = loc[:1] == ("profiles",)
        if (profile is None and not in_profiles) or (
            profile is not None and loc[:2] == ("profiles", profile)
        ):
            return doc.unset_error(loc)
    return None


def _raise_unset(doc: Document, profile: str | None) -> None:
    err = _unset_in(doc, profile)
    if err:
        raise err


def _validate(doc: Document, data: Any, overlay: Loc = ()) -> ConfigSpec:
    try:
        return ConfigSpec.model_validate(data)
    except ValidationError as exc:
        raise translate(doc, exc.errors(), overlay) from None


def _apply(doc: Document, spec: ConfigSpec, name: str) -> ConfigSpec:
    """`spec` with profile `name` merged in, validated; errors point into the profile."""
    return _validate(doc, profiles_.overlay(spec, spec.profiles[name]), ("profiles", name))


def _project(doc: Document, spec: ConfigSpec, active: tuple[str, ...]) -> Project:
    root = doc.path.parent
    services = {name: _service(root, name, s, spec.registry) for name, s in spec.services.items()}
    return Project(
        name=spec.name,
        root=root,
        config_path=doc.path,
        profiles=active,
        target=spec.target,
        kube_context=spec.kubernetes.context,
        namespace=spec.kubernetes.namespace or spec.name,
        allowed_contexts=tuple(spec.kubernetes.allowed_contexts),
        rollout_timeout=spec.kubernetes.rollout_timeout,
        registry=spec.registry,
        values=types.MappingProxyType(dict(spec.values)),
        ignore=tuple(spec.ignore),
        services=types.MappingProxyType(services),
        keep_images=spec.keep_images,
        registry_insecure=tuple(spec.registry_insecure),
    )


def _service(root: Path, name: str, s: ServiceSpec, registry: str | None) -> Service:
    context = (root / s.context).resolve()
    return Service(
        name=name,
        image=f"{registry.rstrip('/')}/{s.image}" if registry else s.image,
        context=context,
        dockerfile=(context / s.dockerfile).resolve(),
        target=s.target,
        build_args=types.MappingProxyType(dict(s.build_args)),
        builder=s.builder.command if s.builder else None,
        manifests=tuple(dict.fromkeys(p for m in s.manifests for p in _manifest_paths(root, m))),
        archetype=s.archetype if s.archetype or s.manifests else ("web" if s.ports else "worker"),
        values=types.MappingProxyType(dict(s.values)),
        sync=tuple(_sync_rule(r) for r in s.sync),
        ports=tuple(_port(p) for p in s.ports),
        env=types.MappingProxyType(dict(s.env)),
        requires=tuple(s.requires),
        trigger=s.trigger,
        rebuild=tuple(g.removeprefix("./") for g in s.rebuild),
        local=_local(root, s.local),
    )


def _local(root: Path, spec: LocalSpec | None) -> LocalRun | None:
    if spec is None:
        return None
    return LocalRun(
        command=spec.command,
        cwd=(root / spec.cwd).resolve(),
        env=types.MappingProxyType(dict(spec.env)),
    )


def _manifest_paths(root: Path, entry: str) -> list[Path]:
    """The files a `manifests` entry names: itself, or what its glob (`k8s/*.yaml`,
    `k8s/**/*.yaml`) matches now, sorted."""
    if not any(c in entry for c in "*?["):
        return [(root / entry).resolve()]
    return sorted(p.resolve() for p in root.glob(entry) if p.is_file())


def _sync_rule(r: SyncRuleSpec) -> SyncRule:
    then: Any = r.then
    if isinstance(then, ExecThen):
        then = ("/bin/sh", "-c", then.exec) if isinstance(then.exec, str) else tuple(then.exec)
    src = r.src.removeprefix("./")
    strip = r.strip.strip("/") if r.strip is not None else _fixed_prefix(src)
    ignore = tuple(g.removeprefix("./") for g in r.ignore)
    return SyncRule(src=src, dest=r.dest, then=then, strip=strip, ignore=ignore)


def _fixed_prefix(glob: str) -> str:
    """'site/**/*.html' → 'site': the directories before the first wildcard."""
    fixed = []
    for part in glob.split("/")[:-1]:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    return "/".join(p for p in fixed if p not in ("", "."))


def _port(text: str) -> Port:
    local, _, container = text.rpartition(":")
    return Port(local=int(local or container), container=int(container))


def _check(doc: Document, project: Project, spec: ConfigSpec, active: tuple[str, ...]) -> None:
    """Checks that need more than one value, or the filesystem; the first problem is raised."""
    for loc, message in _problems(project, spec):
        where = next(
            (("profiles", p, *loc) for p in reversed(active) if ("profiles", p, *loc) in doc.keys),
            loc,
        )
        raise doc.error(where, message)


def _problems(project: Project, spec: ConfigSpec) -> Iterator[tuple[Loc, str]]:
    for name, svc in project.services.items():
        yield from _requires(project, svc)
        yield from _files(project.root, svc, spec.services[name])
    yield from _duplicates(project, spec)
    cycle = _find_cycle(project)
    if cycle:
        yield ("services", cycle[0], "requires"), "requires cycle: " + " -> ".join(cycle)


def _requires(project: Project, svc: Service) -> Iterator[tuple[Loc, str]]:
    for i, dep in enumerate(svc.requires):
        if dep not in project.services:
            hint = difflib.get_close_matches(dep, list(project.services), n=1)
            extra = (
                f" (did you mean '{hint[0]}'?)"
                if hint
                else f" (services: {', '.join(project.services)})"
            )
            yield ("services", svc.name, "requires", i), f"unknown service '{dep}'{extra}"


def _files(root: Path, svc: Service, raw: ServiceSpec) -> Iterator[tuple[Loc, str]]:
    loc: Loc = ("services", svc.name)
    if not svc.context.is_dir():
        yield (*loc, "context"), f"context directory '{raw.context}' does not exist"
    elif not svc.builder and not svc.dockerfile.is_relative_to(root):
        # outside the context is fine (docker build -f), outside the project is not
        yield (
            (*loc, "dockerfile"),
            f"Dockerfile '{raw.dockerfile}' is outside the project directory",
        )
    elif not svc.builder and not svc.dockerfile.is_file():
        yield (
            (*loc, "dockerfile"),
            f"Dockerfile '{raw.dockerfile}' does not exist in '{raw.context}'",
        )
    for i, entry in enumerate(raw.manifests):
        paths = _manifest_paths(root, entry)
        if not paths:
            yield (*loc, "manifests", i), f"manifest glob '{entry}' matches no file"
        for path in paths:
            if not path.is_relative_to(root):
                yield (*loc, "manifests", i), f"manifest '{entry}' is outside the project directory"
            elif not path.is_file():
                yield (*loc, "manifests", i), f"manifest '{entry}' does not exist"
    if raw.manifests and raw.archetype:
        yield (*loc, "archetype"), "give either 'manifests' or 'archetype', not both"
    if svc.archetype and svc.archetype not in ARCHETYPES:
        yield (
            (*loc, "archetype"),
            f"unknown archetype '{svc.archetype}' (built in: {', '.join(ARCHETYPES)})",
        )


def _duplicates(project: Project, spec: ConfigSpec) -> Iterator[tuple[Loc, str]]:
    """Two services may share neither an image nor a local port."""
    images: dict[str, str] = {}
    ports: dict[int, str] = {}
    for name, svc in project.services.items():
        if svc.image in images:
            yield (
                ("services", name, "image"),
                (
                    f"image '{spec.services[name].image}' is also the image of service "
                    f"'{images[svc.image]}'"
                ),
            )
        images.setdefault(svc.image, name)
        for i, port in enumerate(svc.ports):
            if port.local in ports:
                other = ports[port.local]
                yield (
                    ("services", name, "ports", i),
                    f"local port {port.local} is given twice"
                    if other == name
                    else f"local port {port.local} is also used by service '{other}'",
                )
            ports.setdefault(port.local, name)


def _find_cycle(project: Project) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for dep in project.services[n].requires:
            if dep not in project.services:
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for name in project.services:
        if name not in state and (found := visit(name)):
            return found
    return None
