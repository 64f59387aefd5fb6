"""devloop.yaml → Project: parse once, apply profiles, validate, and report errors by file:line."""

from __future__ import annotations

import copy
import difflib
import fnmatch
import os
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from devloop import yamlsource
from devloop.errors import ConfigError
from devloop.project import CONFIG_NAME, Port, Project, Service, SyncRule
from devloop.render import ARCHETYPES
from devloop.schema import ConfigSpec, ExecThen, ServiceSpec, SyncRuleSpec
from devloop.yamlsource import Document, Loc

_OVERRIDABLE = ("target", "kubernetes", "registry", "values", "ignore", "services")


def load(
    directory: Path,
    profiles: Sequence[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    kube_context: str | None = None,
) -> Project:
    """Load `directory/devloop.yaml` with the named (or activated) profiles applied."""
    env = os.environ if environ is None else environ
    doc = yamlsource.load((directory / CONFIG_NAME).resolve(), env)
    if not isinstance(doc.data, dict):
        raise doc.error((), "the top level must be a mapping with 'name' and 'services'")
    base = _validate(doc, doc.data, ())
    for name in base.profiles:  # every profile is checked, not only the chosen one
        _merged(doc, base, name)
    active = _choose(doc, base, profiles, env, kube_context)
    spec = base
    for name in active:
        spec = _merged(doc, spec, name)
    project = _project(doc, spec, active)
    _check(doc, project, spec, active)
    return project


def _validate(doc: Document, data: Any, overlay: Loc, base: Any = None) -> ConfigSpec:
    try:
        return ConfigSpec.model_validate(data)
    except ValidationError as exc:
        raise _translate(doc, exc.errors()[0], overlay, base) from None


def _translate(doc: Document, err: Any, overlay: Loc, base: Any) -> ConfigError:
    loc = _strip_union_tags(tuple(err["loc"]))
    where = _in_overlay(doc, loc, overlay)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _keys_at(loc[:-1])
        hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else f" (allowed: {', '.join(sorted(allowed))})"
        return ConfigError(_message(doc, where, key=True, text=f"unknown key '{key}'{suggestion}", parent=True))
    if kind == "missing":
        return ConfigError(_message(doc, where, key=True, text=f"missing required key '{loc[-1]}'", parent=True))
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind in {"string_type", "dict_type", "list_type", "int_parsing", "float_parsing", "bool_parsing", "model_type", "literal_error", "int_type", "float_type", "string_pattern_mismatch"}:
        msg = f"{msg} (got {_describe(err.get('input'))})"
    return ConfigError(_message(doc, where, key=False, text=msg))


def _message(doc: Document, loc: Loc, *, key: bool, text: str, parent: bool = False) -> str:
    """`file:line:col: key.path: text`; for parent errors the path shown is the mapping."""
    shown = loc[:-1] if parent else loc
    pos = doc.where(loc, key=key) if loc in doc.keys or loc in doc.values else doc.where(shown, key=True)
    prefix = f"{yamlsource.format_loc(shown)}: " if shown else ""
    return f"{yamlsource.display_path(doc.path)}:{pos.line}:{pos.column}: {prefix}{text}"


def _strip_union_tags(loc: Loc) -> Loc:
    # pydantic names the union member it tried ('literal[...]', 'ExecThen'); drop those parts.
    return tuple(p for p in loc if not (isinstance(p, str) and (p.startswith("literal[") or p in {"ExecThen", "str", "list[str]"})))


def _in_overlay(doc: Document, loc: Loc, overlay: Loc) -> Loc:
    if overlay:
        full = (*overlay, *loc)
        # the error is inside what the profile wrote when any prefix of it is there
        for end in range(len(loc), 0, -1):
            if (*overlay, *loc[:end]) in doc.keys:
                return full
    return loc


def _keys_at(loc: Loc) -> list[str]:
    model: Any = ConfigSpec
    for part in loc:
        model = _descend(model, part)
        if model is None:
            return []
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _descend(tp: Any, part: str | int) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if isinstance(part, int) or part not in tp.model_fields:
            return None
        return _unwrap(tp.model_fields[part].annotation)
    origin = typing.get_origin(tp)
    if origin in (list, dict):
        return _unwrap(typing.get_args(tp)[-1])
    return None


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            inner = _unwrap(arg)
            if (isinstance(inner, type) and issubclass(inner, BaseModel)) or typing.get_origin(inner) in (list, dict):
                return inner
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    return tp


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}" if value is not None else "nothing"


def _merged(doc: Document, spec: ConfigSpec, name: str) -> ConfigSpec:
    profile = spec.profiles[name]
    data = spec.model_dump(exclude={"profiles"}, exclude_unset=False)
    overlay = profile.model_dump(include=set(_OVERRIDABLE), exclude_none=True)
    merged = _deep_merge(data, overlay)
    merged["profiles"] = {k: v.model_dump() for k, v in spec.profiles.items()}
    return _validate(doc, merged, ("profiles", name))


def _deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for k, v in over.items():
            out[k] = _deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _choose(
    doc: Document, spec: ConfigSpec, wanted: Sequence[str], env: Mapping[str, str], kube_context: str | None
) -> tuple[str, ...]:
    for name in wanted:
        if name not in spec.profiles:
            hint = difflib.get_close_matches(name, list(spec.profiles), n=1)
            known = ", ".join(sorted(spec.profiles)) or "none are defined"
            extra = f" (did you mean '{hint[0]}'?)" if hint else f" (profiles: {known})"
            loc: Loc = ("profiles",) if spec.profiles else ()
            raise ConfigError(_message(doc, loc, key=True, text=f"unknown profile '{name}'{extra}"))
    if wanted:
        return tuple(wanted)
    context = kube_context or spec.kubernetes.context or current_kube_context(env)
    active = []
    for name, profile in spec.profiles.items():
        for rule in profile.activation:
            if rule.env and _env_matches(rule.env, env):
                active.append(name)
                break
            if rule.kube_context and context and fnmatch.fnmatchcase(context, rule.kube_context):
                active.append(name)
                break
    return tuple(active)


def _env_matches(rule: str, env: Mapping[str, str]) -> bool:
    var, sep, value = rule.partition("=")
    return env.get(var, "") == value if sep else bool(env.get(var))


def current_kube_context(env: Mapping[str, str]) -> str | None:
    """The kubeconfig's current-context, read without contacting any cluster."""
    from ruamel.yaml import YAML

    paths = env.get("KUBECONFIG", str(Path.home() / ".kube" / "config")).split(os.pathsep)
    for p in paths:
        try:
            data = YAML(typ="safe").load(Path(p).read_text())
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(data, dict) and data.get("current-context"):
            return str(data["current-context"])
    return None


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
        manifests=tuple((root / m).resolve() for m in s.manifests),
        archetype=s.archetype if s.archetype or s.manifests else ("web" if s.ports else "worker"),
        values=types.MappingProxyType(dict(s.values)),
        sync=tuple(_sync_rule(r) for r in s.sync),
        ports=tuple(_port(p) for p in s.ports),
        env=types.MappingProxyType(dict(s.env)),
        requires=tuple(s.requires),
    )


def _sync_rule(r: SyncRuleSpec) -> SyncRule:
    then: Any = r.then
    if isinstance(then, ExecThen):
        then = ("/bin/sh", "-c", then.exec) if isinstance(then.exec, str) else tuple(then.exec)
    strip = r.strip if r.strip is not None else _fixed_prefix(r.src)
    return SyncRule(src=r.src.lstrip("./") if r.src.startswith("./") else r.src, dest=r.dest, then=then, strip=strip)


def _fixed_prefix(glob: str) -> str:
    """'site/**/*.html' → 'site': the directories before the first wildcard."""
    parts = glob.split("/")
    fixed = []
    for part in parts[:-1]:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    return "/".join(p for p in fixed if p not in ("", "."))


def _port(text: str) -> Port:
    local, _, container = text.rpartition(":")
    return Port(local=int(local or container), container=int(container))


def _check(doc: Document, project: Project, spec: ConfigSpec, active: tuple[str, ...]) -> None:
    """Checks that need more than one value, or the filesystem."""
    for loc, message in _problems(project, spec):
        where = loc
        for name in reversed(active):
            if (("profiles", name, *loc)) in doc.keys:
                where = ("profiles", name, *loc)
                break
        raise ConfigError(_message(doc, where, key=False, text=message))


def _problems(project: Project, spec: ConfigSpec) -> Iterator[tuple[Loc, str]]:
    images: dict[str, str] = {}
    for name, svc in project.services.items():
        raw = spec.services[name]
        for i, dep in enumerate(svc.requires):
            if dep not in project.services:
                hint = difflib.get_close_matches(dep, list(project.services), n=1)
                extra = f" (did you mean '{hint[0]}'?)" if hint else ""
                yield ("services", name, "requires", i), f"unknown service '{dep}'{extra}"
        if svc.image in images:
            yield ("services", name, "image"), f"image '{raw.image}' is also the image of service '{images[svc.image]}'"
        images[svc.image] = name
        if not svc.context.is_dir():
            yield ("services", name, "context"), f"context directory '{raw.context}' does not exist"
        elif not svc.builder and not svc.dockerfile.is_file():
            yield ("services", name, "dockerfile"), f"Dockerfile '{raw.dockerfile}' does not exist in '{raw.context}'"
        for i, path in enumerate(svc.manifests):
            if not path.is_file():
                yield ("services", name, "manifests", i), f"manifest '{raw.manifests[i]}' does not exist"
        if raw.manifests and raw.archetype:
            yield ("services", name, "archetype"), "give either 'manifests' or 'archetype', not both"
        if svc.archetype and svc.archetype not in ARCHETYPES:
            yield ("services", name, "archetype"), f"unknown archetype '{svc.archetype}' (built in: {', '.join(ARCHETYPES)})"
    cycle = _find_cycle(project)
    if cycle:
        yield ("services", cycle[0], "requires"), "requires cycle: " + " -> ".join(cycle)


def _find_cycle(project: Project) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for dep in project.services[n].requires:
            if dep not in project.services:
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for name in project.services:
        if name not in state and (found := visit(name)):
            return found
    return None
