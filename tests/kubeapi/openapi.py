"""An OpenAPI v3 document per group-version, enough for kubectl: the schemas (from
kubernetes-validate's v1.31 JSON schemas, see schemas.py, converted) and, per resource, the
paths with their operations, GVK extensions and the fieldValidation parameter, so kubectl
validates on the server (fieldValidation=Strict) instead of giving up with --validate=false.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from tests.kubeapi.meta import Obj
from tests.kubeapi.resources import TYPES, ResourceType
from tests.kubeapi.schemas import schema_dir


def _convert(node: Any) -> Any:
    """JSON schema (2020-12, nullable types, $defs) -> OpenAPI 3.0 schema objects."""
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: Obj = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out["$ref"] = value.replace("#/$defs/", "#/components/schemas/")
        elif key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            if kinds:
                out["type"] = kinds[0]
        else:
            out[key] = _convert(value)
    return out


@functools.cache
def _schemas() -> dict[str, Obj]:
    ref = schema_dir("local").joinpath("_definitions.json")
    defs: dict[str, Obj] = json.loads(ref.read_text())["$defs"]
    return {name: _convert(schema) for name, schema in defs.items()}


def _schema_name(rt: ResourceType) -> str | None:
    for name, schema in _schemas().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            if (gvk.get("group"), gvk.get("version"), gvk.get("kind")) == (
                rt.group,
                rt.version,
                rt.kind,
            ):
                return name
    return None


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _operation(rt: ResourceType, verb: str, schema: str | None, body: bool) -> Obj:
    ref = {"$ref": f"#/components/schemas/{schema}"} if schema else {"type": "object"}
    op: Obj = {
        "operationId": f"{verb}{rt.kind}",
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        },
        "responses": {"200": {"content": {"application/json": {"schema": ref}}}},
        "parameters": [],
    }
    if body:
        op["parameters"] = [
            {"name": n, "in": "query", "schema": {"type": "string"}}
            for n in ("dryRun", "fieldManager", "fieldValidation")
        ]
        op["requestBody"] = {"content": {"*/*": {"schema": ref}}}
    return op


@functools.cache
def document(group: str, version: str) -> Obj | None:
    types = [rt for rt in TYPES if (rt.group, rt.version) == (group, version)]
    if not types:
        return None
    paths: Obj = {}
    names: set[str] = set()
    base = "/" + _gv_path(group, version)
    for rt in types:
        schema = _schema_name(rt)
        if schema:
            names.add(schema)
        where = (
            f"{base}/namespaces/{{namespace}}/{rt.plural}"
            if rt.namespaced
            else f"{base}/{rt.plural}"
        )
        paths[where] = {
            "get": _operation(rt, "list", schema, False),
            "post": _operation(rt, "post", schema, True),
        }
        paths[f"{where}/{{name}}"] = {
            "get": _operation(rt, "get", schema, False),
            "put": _operation(rt, "put", schema, True),
            "patch": _operation(rt, "patch", schema, True),
            "delete": _operation(rt, "delete", schema, False),
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.31.0"},
        "paths": paths,
        "components": {"schemas": _schemas()},
    }


@functools.cache
def _hash(group: str, version: str) -> str:
    return hashlib.sha512(json.dumps(document(group, version)).encode()).hexdigest()[:64].upper()


def index() -> Obj:
    gvs = sorted({(rt.group, rt.version) for rt in TYPES})
    return {
        "paths": {
            _gv_path(g, v): {
                "serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash={_hash(g, v)}"
            }
            for g, v in gvs
        }
    }


def lookup(parts: list[str]) -> Obj | None:
    """/openapi/v3, /openapi/v3/api/v1, /openapi/v3/apis/GROUP/VERSION."""
    rest = parts[2:]
    if not rest:
        return index()
    if rest[0] == "api" and len(rest) == 2:
        return document("", rest[1])
    if rest[0] == "apis" and len(rest) == 3:
        return document(rest[1], rest[2])
    return None
