"""A pod container's environment as Kubernetes would give it: literals, ConfigMap and Secret refs,
$(VAR)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from devloop.errors import DeployError
from devloop.model.manifest import Manifest

_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z0-9]+)\)")


@dataclass(frozen=True)
class Sources:
    """The rendered ConfigMaps and Secrets, as plain strings, keyed by (namespace, name)."""

    config_maps: Mapping[tuple[str, str], Mapping[str, str]]
    secrets: Mapping[tuple[str, str], Mapping[str, str]]

    @classmethod
    def of(cls, manifests: Sequence[Manifest]) -> Sources:
        maps = {_key(m): _strings(m.obj.get("data")) for m in manifests if m.kind == "ConfigMap"}
        secrets = {_key(m): _secret_data(m) for m in manifests if m.kind == "Secret"}
        return cls(maps, secrets)


def resolve_env(
    container: Mapping[str, Any], namespace: str, pod: str, sources: Sources
) -> list[tuple[str, str]]:
    """`envFrom` then `env` of `container`, later names overriding earlier ones, references
    expanded."""
    env: dict[str, str] = {}
    for item in container.get("envFrom") or []:
        env.update(_env_from(item, namespace, sources))
    for item in container.get("env") or []:
        name = str(item["name"])
        if "value" in item or "valueFrom" not in item:
            env[name] = expand(str(item.get("value") or ""), env)
            continue
        value = _value_from(name, item["valueFrom"], namespace, pod, sources)
        if value is not None:
            env[name] = value
    return list(env.items())


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`, the rest
    stays."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _REF.sub(sub, text)


def _env_from(item: Mapping[str, Any], namespace: str, sources: Sources) -> dict[str, str]:
    prefix = str(item.get("prefix") or "")
    for field, table, what in (
        ("configMapRef", sources.config_maps, "ConfigMap"),
        ("secretRef", sources.secrets, "Secret"),
    ):
        ref = item.get(field)
        if ref is None:
            continue
        data = table.get((namespace, str(ref.get("name"))))
        if data is None:
            if ref.get("optional"):
                return {}
            raise DeployError(
                f"envFrom: {what} '{ref.get('name')}' is not among the rendered manifests"
            )
        return {prefix + k: v for k, v in data.items()}
    return {}


def _value_from(
    name: str, source: Mapping[str, Any], namespace: str, pod: str, sources: Sources
) -> str | None:
    for field, table, what in (
        ("configMapKeyRef", sources.config_maps, "ConfigMap"),
        ("secretKeyRef", sources.secrets, "Secret"),
    ):
        ref = source.get(field)
        if ref is None:
            continue
        obj, key = str(ref.get("name")), str(ref.get("key"))
        data = table.get((namespace, obj))
        if data is not None and key in data:
            return data[key]
        if ref.get("optional"):
            return None
        missing = (
            f"has no key '{key}'" if data is not None else "is not among the rendered manifests"
        )
        raise DeployError(f"env {name}: {what} '{obj}' {missing}")
    field_ref = source.get("fieldRef")
    if field_ref is not None:
        # only what is known before the container exists; status.* and spec.* are left unset
        return {"metadata.name": pod, "metadata.namespace": namespace}.get(
            str(field_ref.get("fieldPath"))
        )
    return None  # resourceFieldRef: limits mean nothing to a local engine


def _key(m: Manifest) -> tuple[str, str]:
    return (m.namespace or "default", m.name)


def _strings(data: Any) -> dict[str, str]:
    return {str(k): "" if v is None else str(v) for k, v in (data or {}).items()}


def _secret_data(m: Manifest) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in _strings(m.obj.get("data")).items():
        try:
            out[key] = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise DeployError(
                f"Secret '{m.name}' key '{key}': data is not base64 of UTF-8 text: {exc}"
            ) from None
    out.update(_strings(m.obj.get("stringData")))  # stringData wins, as on the API server
    return out
