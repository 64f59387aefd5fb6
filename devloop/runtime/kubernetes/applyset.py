"""The record of what devloop applied in a project (KEP-3659 style): a parent ConfigMap in the
project's namespace lists every object, so prune and delete need no list calls (none across the
cluster, none on kinds a namespaced Role may not list)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable

from devloop.model.manifest import LABEL_MANAGED_BY
from devloop.runtime.kubernetes.rest import KubeApiError, Rest

ID_LABEL = "applyset.kubernetes.io/id"
KINDS_ANNOTATION = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES_ANNOTATION = "applyset.kubernetes.io/additional-namespaces"
TOOLING_ANNOTATION = "applyset.kubernetes.io/tooling"
DATA_KEY = "objects.json"

# (apiVersion, kind, namespace or "", name, service)
Entry = tuple[str, str, str, str, str]


def parent_name(project: str) -> str:
    return f"devloop-applyset-{project}"


def applyset_id(name: str, namespace: str) -> str:
    """The id KEP-3659 derives from the parent's name, namespace, kind and group."""
    digest = hashlib.sha256(f"{name}.{namespace}.ConfigMap.".encode()).digest()
    return f"applyset-{base64.urlsafe_b64encode(digest).decode().rstrip('=')}-v1"


class AppliedRecord:
    """Reads and writes the parent ConfigMap of one project's applyset."""

    def __init__(self, rest: Rest, namespace: str, project: str) -> None:
        self._rest = rest
        self._namespace = namespace
        self._project = project
        self.name = parent_name(project)
        self.id = applyset_id(self.name, namespace)

    @property
    def _path(self) -> str:
        return f"/api/v1/namespaces/{self._namespace}/configmaps/{self.name}"

    def read(self) -> list[Entry] | None:
        """The recorded objects; None when there is no record (nothing applied, or an older
        devloop applied without one)."""
        try:
            doc = self._rest.get(self._path)
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise
        raw = (doc.get("data") or {}).get(DATA_KEY) or "[]"
        return [(str(a), str(k), str(ns), str(n), str(s)) for a, k, ns, n, s in json.loads(raw)]

    def write(self, entries: Iterable[Entry]) -> None:
        items = sorted(set(entries))
        groups = sorted({f"{k}.{a.split('/')[0]}" if "/" in a else k for a, k, *_ in items})
        others = sorted({ns for _, _, ns, _, _ in items if ns and ns != self._namespace})
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self._namespace,
                "labels": {
                    # not part-of the project: the record is no object of it
                    ID_LABEL: self.id,
                    LABEL_MANAGED_BY: "devloop",
                },
                "annotations": {
                    TOOLING_ANNOTATION: "devloop/v1",
                    KINDS_ANNOTATION: ",".join(groups),
                    NAMESPACES_ANNOTATION: ",".join(others),
                },
            },
            "data": {DATA_KEY: json.dumps([list(e) for e in items])},
        }
        self._rest.request(
            "PATCH",
            self._path,
            body=body,
            query={"fieldManager": "devloop", "force": True},
            content_type="application/apply-patch+yaml",
        )

    def remove(self) -> None:
        try:
            self._rest.request("DELETE", self._path)
        except KubeApiError as exc:
            if exc.status != 404:
                raise
