"""Check rendered objects against the Kubernetes OpenAPI schemas shipped by kubernetes-validate."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator

import jsonschema
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

from devloop.errors import ConfigError
from devloop.model.manifest import Manifest

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?$")


def default_version() -> str:
    """The newest Kubernetes version whose schemas kubernetes-validate ships."""
    return str(kv.latest_version())


def schema_version(wanted: str | None) -> str:
    """The newest shipped schema version not newer than `wanted` ('1.30', 'v1.30.2'; None:
    latest)."""
    text = wanted or default_version()
    m = _VERSION.match(text)
    if not m:
        raise ConfigError(f"Kubernetes version '{text}' is not X.Y (e.g. 1.30)")
    want = (int(m.group(1)), int(m.group(2)))
    shipped = sorted({_minor(v): v for v in kv.all_versions()}.items())
    usable = [v for minor, v in shipped if minor <= want]
    if not usable:
        first, last = shipped[0][1], shipped[-1][1]
        raise ConfigError(
            f"no Kubernetes schemas for {text}: kubernetes-validate has {first} to {last}"
        )
    return str(usable[-1])


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


@functools.cache
def _definitions(version: str) -> Resource:
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    return Resource.from_contents(kv.schema_contents(f"{folder}/_definitions.json", version))


@functools.cache
def _validator(version: str, kind: str, api: str) -> jsonschema.Draft202012Validator | None:
    """The validator of one kind, built once per process (reading the definitions costs ~0.3 s):
    dev validates every deploy."""
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    try:
        schema = kv.schema_contents(f"{folder}/{kind.lower()}-{api}.json", version)
    except FileNotFoundError:
        return None
    registry = _definitions(version) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def violations(
    manifests: Iterable[Manifest], version: str | None = None, *, unknown_kinds: bool = True
) -> Iterator[str]:
    """One line per problem: `template: Kind/name: field.path: message`. `unknown_kinds=False`
    passes kinds with no shipped schema (custom resources) without a word."""
    version = schema_version(version)
    for m in manifests:
        api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", str(m.obj["apiVersion"]))
        what = f"{m.template}: {m.kind}/{m.name}"
        validator = _validator(version, m.kind, api)
        if validator is None:
            if unknown_kinds:
                yield (
                    f"{what}: no schema for {m.obj['apiVersion']} {m.kind} in Kubernetes {version}"
                )
            continue
        for err in sorted(
            validator.iter_errors(m.obj), key=lambda e: list(map(str, e.absolute_path))
        ):
            path = _path(err.absolute_path)
            yield f"{what}: {path or '(object)'}: {_message(err)}"


def _path(parts: Iterable[object]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _message(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        extra = sorted(k for k in err.instance if k not in known)
        return "unknown field " + ", ".join(repr(k) for k in extra)
    return str(err.message)
