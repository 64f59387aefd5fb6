"""Check rendered objects against the Kubernetes OpenAPI schemas shipped by kubernetes-validate."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import jsonschema
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

from devloop.render import Manifest


def default_version() -> str:
    return str(kv.latest_version())


def violations(manifests: Iterable[Manifest], version: str | None = None) -> Iterator[str]:
    """One line per problem: `template: Kind/name: field.path: message`."""
    version = (version or default_version()).lstrip("v")
    schema_version = [v for v in kv.all_versions() if kv.major_minor(v) <= kv.major_minor(version)][-1]
    folder = f"kubernetes-json-schema/v{schema_version}-local-strict"
    defs = Resource.from_contents(kv.schema_contents(f"{folder}/_definitions.json", version))
    for m in manifests:
        api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", str(m.obj["apiVersion"]))
        what = f"{m.template}: {m.kind}/{m.name}"
        try:
            schema = kv.schema_contents(f"{folder}/{m.kind.lower()}-{api}.json", version)
        except FileNotFoundError:
            yield f"{what}: no schema for {m.obj['apiVersion']} {m.kind} in Kubernetes {kv.major_minor(version)}"
            continue
        registry = defs @ (Resource.from_contents(schema) @ Registry())
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        for err in sorted(validator.iter_errors(m.obj), key=lambda e: list(map(str, e.absolute_path))):
            path = _path(err.absolute_path)
            yield f"{what}: {path or '(object)'}: {_message(err)}"


def _path(parts: Iterable[object]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _message(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties":
        return str(err.message).replace("Additional properties are not allowed", "unknown field(s)")
    return str(err.message)
