"""Profiles: which ones apply (named with -p, or activated by env var or kube context), and
merging."""

from __future__ import annotations

import copy
import difflib
import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from devloop.clients.kubeconfig import current_context
from devloop.config import yamlsource
from devloop.config.schema import ConfigSpec, ProfileSpec
from devloop.errors import ConfigError
from devloop.model.paths import display_path

OVERRIDABLE = (
    "target",
    "kubernetes",
    "registry",
    "registry_insecure",
    "values",
    "ignore",
    "services",
)


def overlay(spec: ConfigSpec, profile: ProfileSpec) -> dict[str, Any]:
    """`spec` as data with `profile` applied: mappings merge key by key, lists and scalars
    replace."""
    data = spec.model_dump(exclude={"profiles"})
    merged: dict[str, Any] = deep_merge(
        data, profile.model_dump(include=set(OVERRIDABLE), exclude_none=True)
    )
    merged["profiles"] = {k: v.model_dump(exclude_defaults=True) for k, v in spec.profiles.items()}
    return merged


def deep_merge(base: Any, over: Any) -> Any:
    """`over` on top of `base`; neither is changed."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def choose(
    doc: yamlsource.Document,
    spec: ConfigSpec,
    wanted: Sequence[str],
    env: Mapping[str, str],
    kube_context: str | None,
) -> tuple[str, ...]:
    """The profiles to apply, in order: `wanted` when given, else those whose activation matches."""
    for name in wanted:
        if name not in spec.profiles:
            raise _unknown(doc, spec, name)
    if wanted:
        return tuple(dict.fromkeys(wanted))
    context = kube_context or spec.kubernetes.context or current_context(env)
    return tuple(name for name, p in spec.profiles.items() if _active(p, env, context))


def _unknown(doc: yamlsource.Document, spec: ConfigSpec, name: str) -> ConfigError:
    hint = difflib.get_close_matches(name, list(spec.profiles), n=1)
    if hint:
        extra = f" (did you mean '{hint[0]}'?)"
    else:
        extra = f" (profiles: {', '.join(sorted(spec.profiles)) or 'none are defined'})"
    if spec.profiles:
        return doc.error(("profiles",), f"unknown profile '{name}'{extra}", key=True)
    return ConfigError(f"{display_path(doc.path)}: unknown profile '{name}'{extra}")


def _active(profile: ProfileSpec, env: Mapping[str, str], context: str | None) -> bool:
    for rule in profile.activation:
        if rule.env and _env_matches(rule.env, env):
            return True
        if rule.kube_context and context and fnmatch.fnmatchcase(context, rule.kube_context):
            return True
    return False


def _env_matches(rule: str, env: Mapping[str, str]) -> bool:
    var, sep, value = rule.partition("=")
    return env.get(var, "") == value if sep else bool(env.get(var))
