"""Field validation of request bodies, as the real server does it.

Schemas: the strict (additionalProperties: false) JSON schemas kubernetes-validate ships for
v1.31. Wrong types are always rejected (a JSON decoding error on a real server); unknown
fields by `fieldValidation`: Strict rejects, Warn (the default) answers with `Warning`
headers, Ignore says nothing. Unlike a real server, Warn and Ignore keep the unknown field
in storage. Duplicate list-map keys (env names, container ports) make server-side apply
fail and plain create/update warn.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
import referencing

from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.resources import ResourceType
from tests.kubeapi.schemas import schema_dir


def _load(name: str) -> Any:
    ref = schema_dir("local-strict").joinpath(name)
    return json.loads(ref.read_text())


@functools.cache
def _validator(kind: str, api_version: str) -> jsonschema.protocols.Validator | None:
    group_version = api_version.split("/")
    group = group_version[0].split(".")[0] + "-" if len(group_version) == 2 else ""
    try:
        schema = _load(f"{kind.lower()}-{group}{group_version[-1]}.json")
    except FileNotFoundError:
        return None
    registry: referencing.Registry[Any] = referencing.Registry()
    registry = referencing.Resource.from_contents(schema) @ registry
    registry = referencing.Resource.from_contents(_load("_definitions.json")) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _path(parts: Any) -> str:
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else f".{p}"
    return text.lstrip(".")


def _leaves(errors: Any) -> list[jsonschema.ValidationError]:
    out = []
    for e in errors:
        if e.context:
            out += _leaves(e.context)
        else:
            out.append(e)
    return out


_GO_TYPES = {"integer": "int32", "number": "float64", "string": "string", "boolean": "bool"}


def _go_type(value: Any) -> str:
    return {str: "string", bool: "bool", int: "number", float: "number", list: "array"}.get(
        type(value), "object"
    )


def check(rt: ResourceType, body: Obj, mode: str, apply: bool) -> list[str]:
    """Warnings for `body`; raises ApiError where the real server refuses it."""
    validator = _validator(rt.kind, rt.api_version)
    warnings: list[str] = []
    unknown: list[str] = []
    wrong: list[tuple[str, Any, str]] = []
    if validator is not None:
        for error in _leaves(validator.iter_errors(body)):
            if error.validator == "additionalProperties":
                extra = set(error.instance) - set(error.schema.get("properties") or {})
                base = _path(error.absolute_path)
                unknown += sorted(f"{base}.{k}".lstrip(".") for k in extra)
            elif error.validator == "type" and error.instance is not None:
                want = error.validator_value
                want = [t for t in want if t != "null"] if isinstance(want, list) else [want]
                wrong.append((_path(error.absolute_path), error.instance, want[0] if want else ""))
    name = (body.get("metadata") or {}).get("name", "")
    if wrong:
        path, value, want = wrong[0]
        if apply:
            raise _typed_patch_error(rt, body, f".{path}: expected {want}, got {_go_type(value)}")
        raise ApiError(
            400,
            "BadRequest",
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: json: '
            f"cannot unmarshal {_go_type(value)} into Go struct field "
            f"{path.rsplit('.', 1)[-1]} of type {_GO_TYPES.get(want, want)}",
        )
    if unknown and mode == "Strict":
        if apply:
            raise _typed_patch_error(rt, body, f".{unknown[0]}: field not declared in schema")
        listing = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise ApiError(400, "BadRequest", f"strict decoding error: {listing}")
    if unknown and mode == "Warn":
        warnings += [f'unknown field "{u}"' for u in unknown]
    for where, spec in _pod_specs(body):
        for kind in ("initContainers", "containers"):
            for i, c in enumerate(spec.get(kind) or []):
                if not isinstance(c, dict):
                    continue
                here = f"{where}.{kind}[{i}]"
                dupes = _duplicates(c.get("env"), ("name",)) + _duplicates(
                    c.get("ports"), ("containerPort", "protocol")
                )
                for field, index, key in dupes:
                    if apply:
                        what = ",".join(
                            f'{k}="{v}"' if isinstance(v, str) else f"{k}={v}" for k, v in key
                        )
                        cname = c.get("name", "")
                        raise _typed_patch_error(
                            rt,
                            body,
                            f'.{where}.{kind}[name="{cname}"].{field}: duplicate entries '
                            f"for key [{what}]",
                        )
                    if field == "env":
                        warnings.append(
                            f'{here}.env[{index}]: hides previous definition of "{key[0][1]}", '
                            "which may be dropped when using apply"
                        )
                    else:
                        warnings.append(
                            f"{here}.ports[{index}]: duplicate port definition with name "
                            f"{name!r}, containerPort {key[0][1]}"
                        )
    return warnings


def _typed_patch_error(rt: ResourceType, body: Obj, detail: str) -> ApiError:
    md = body.get("metadata") or {}
    ref = f"{md.get('namespace', '')}/{md.get('name', '')}".lstrip("/")
    gvk = f"{rt.api_version}, Kind={rt.kind}"
    return ApiError(
        500, "InternalError", f"failed to create typed patch object ({ref}; {gvk}): {detail}"
    )


def _pod_specs(body: Obj) -> list[tuple[str, Obj]]:
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return []
    kind = body.get("kind")
    if kind == "Pod":
        return [("spec", spec)]
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
        template = (spec.get("template") or {}).get("spec")
        return [("spec.jobTemplate.spec.template.spec", template)] if template else []
    template = (spec.get("template") or {}).get("spec") if isinstance(spec, dict) else None
    return [("spec.template.spec", template)] if isinstance(template, dict) else []


def _duplicates(
    items: Any, keys: tuple[str, ...]
) -> list[tuple[str, int, tuple[tuple[str, Any], ...]]]:
    if not isinstance(items, list):
        return []
    field = "env" if keys == ("name",) else "ports"
    seen: set[tuple[tuple[str, Any], ...]] = set()
    found = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        key = tuple((k, item.get(k, "TCP" if k == "protocol" else None)) for k in keys)
        if key in seen:
            found.append((field, i, key))
        seen.add(key)
    return found
