"""The ConfigMaps and Secrets a namespace holds, as strings: what a pod's env may reference
beyond the rendered objects (`dev --local --print-env`)."""

from __future__ import annotations

import base64
import binascii

from devloop.runtime.kubernetes.rest import KubeApiError, Rest

Table = dict[tuple[str, str], dict[str, str]]


def cluster_sources(rest: Rest, namespace: str) -> tuple[Table, Table]:
    """(config maps, secrets) of `namespace`, keyed by (namespace, name); empty when the
    namespace does not exist yet or may not be read."""
    maps: Table = {}
    secrets: Table = {}
    try:
        for cm in rest.get(f"/api/v1/namespaces/{namespace}/configmaps").get("items") or []:
            maps[(namespace, cm["metadata"]["name"])] = {
                str(k): str(v) for k, v in (cm.get("data") or {}).items()
            }
        for s in rest.get(f"/api/v1/namespaces/{namespace}/secrets").get("items") or []:
            secrets[(namespace, s["metadata"]["name"])] = _decoded(s.get("data") or {})
    except KubeApiError as exc:
        if exc.status not in (403, 404):
            raise
    return maps, secrets


def _decoded(data: dict[str, str]) -> dict[str, str]:
    out = {}
    for key, value in data.items():
        try:
            out[str(key)] = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue  # binary data cannot be an environment variable
    return out
