"""Server-side apply of rendered objects, pruning of what is no longer rendered, deletion by
label."""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from devloop.model.manifest import LABEL_MANAGED_BY, LABEL_PART_OF, LABEL_SERVICE
from devloop.runtime.kubernetes.kinds import PRUNABLE, Kind, Kinds
from devloop.runtime.kubernetes.rest import KubeApiError, Obj, Rest, selector

FIELD_MANAGER = "devloop"
LABEL_SESSION = "devloop.dev/session"


@dataclass(frozen=True)
class Ref:
    """An object devloop applied: enough to find it again and delete it."""

    kind: Kind
    namespace: str | None
    name: str
    service: str

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.kind.kind, self.namespace, self.name)

    def __str__(self) -> str:
        return f"{self.kind.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


class Applier:
    """Applies, prunes and deletes the objects of one project in one namespace."""

    def __init__(
        self, rest: Rest, kinds: Kinds, namespace: str, project: str, session: str
    ) -> None:
        self._rest = rest
        self._kinds = kinds
        self._namespace = namespace
        self._labels = {LABEL_PART_OF: project, LABEL_MANAGED_BY: "devloop"}
        self._session = session
        self._unserved: set[tuple[str, str]] = set()  # kinds this server does not have

    def apply(self, objects: Sequence[tuple[Obj, str]]) -> list[Ref]:
        """Server-side apply (field manager devloop, conflicts forced) of each (object, service)."""
        self._ensure_namespaces(
            {
                str(o["metadata"].get("namespace") or self._namespace)
                for o, _ in objects
                if self._kinds.of(o["apiVersion"], o["kind"]).namespaced
            }
        )
        return [self._apply_one(obj, service) for obj, service in objects]

    def prune(self, keep: Iterable[Ref], services: Collection[str]) -> list[Ref]:
        """Delete the project's objects of `services` that are not in `keep`; what was deleted."""
        kept = {r.key for r in keep}
        gone = [r for r in self.owned() if r.service in services and r.key not in kept]
        return [r for r in gone if self.delete(r)]

    def owned(self) -> list[Ref]:
        """Every object in the namespace carrying the project's labels that a controller does not
        own."""
        refs: list[Ref] = []
        for api_version, kind_name in PRUNABLE:
            if (api_version, kind_name) in self._unserved:
                continue
            kind = self._kinds.of(api_version, kind_name)
            for item in self._list(kind):
                meta = item["metadata"]
                if meta.get("ownerReferences") or meta.get("deletionTimestamp"):
                    continue  # pods of a Deployment go with it; terminating ones are going
                service = str((meta.get("labels") or {}).get(LABEL_SERVICE, ""))
                refs.append(Ref(kind, self._namespace, str(meta["name"]), service))
        return refs

    def delete(self, ref: Ref) -> bool:
        """Delete `ref` (its dependents in the background); False when it was already gone."""
        try:
            self._rest.request(
                "DELETE",
                ref.kind.path(ref.namespace, ref.name),
                query={"propagationPolicy": "Background"},
            )
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _apply_one(self, obj: Obj, service: str) -> Ref:
        kind = self._kinds.of(obj["apiVersion"], obj["kind"])
        body = copy.deepcopy(obj)
        meta = body["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), LABEL_SESSION: self._session}
        namespace = str(meta.get("namespace") or self._namespace) if kind.namespaced else None
        if namespace:
            meta["namespace"] = namespace
        self._rest.request(
            "PATCH",
            kind.path(namespace, meta["name"]),
            body=body,
            query={"fieldManager": FIELD_MANAGER, "force": True},
            content_type="application/apply-patch+yaml",
        )
        return Ref(kind, namespace, str(meta["name"]), service)

    def _ensure_namespaces(self, namespaces: Iterable[str]) -> None:
        kind = self._kinds.of("v1", "Namespace")
        for ns in sorted(namespaces):
            try:
                self._rest.get(kind.path(None, ns))
                continue
            except KubeApiError as exc:
                if exc.status != 404:
                    raise
            try:
                self._rest.request(
                    "POST",
                    kind.path(None),
                    body={
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": ns, "labels": {LABEL_MANAGED_BY: "devloop"}},
                    },
                )
            except KubeApiError as exc:
                if exc.status != 409:  # created meanwhile by someone else: fine
                    raise

    def _list(self, kind: Kind) -> list[Obj]:
        try:
            doc = self._rest.get(
                kind.path(self._namespace), query={"labelSelector": selector(self._labels)}
            )
        except KubeApiError as exc:
            if exc.status == 404:
                self._unserved.add((kind.api_version, kind.kind))
                return []
            raise
        return list(doc.get("items") or [])
