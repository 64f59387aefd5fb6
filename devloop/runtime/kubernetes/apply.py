"""Server-side apply of rendered objects, pruning of what is no longer rendered, deletion by
label."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from devloop.errors import DeployError
from devloop.model.manifest import LABEL_MANAGED_BY, LABEL_PART_OF, LABEL_SERVICE
from devloop.runtime.kubernetes.applyset import AppliedRecord, Entry
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

    @property
    def entry(self) -> Entry:
        return (
            self.kind.api_version,
            self.kind.kind,
            self.namespace or "",
            self.name,
            self.service,
        )

    def __str__(self) -> str:
        return f"{self.kind.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


# How long a namespace that is still terminating is waited for before applying into it.
TERMINATING_WAIT = 120.0


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
        self._record = AppliedRecord(rest, namespace, project)
        self._warned = False

    def apply(self, objects: Sequence[tuple[Obj, str]]) -> list[Ref]:
        """Server-side apply (field manager devloop, conflicts forced) of each (object, service).
        The record of applied objects grows before the apply, so a crash never leaves an object
        devloop does not know about."""
        self._ensure_namespaces(
            {self._namespace}
            | {
                str(o["metadata"].get("namespace") or self._namespace)
                for o, _ in objects
                if self._kinds.of(o["apiVersion"], o["kind"]).namespaced
            }
        )
        refs = [self._ref(obj, service) for obj, service in objects]
        recorded = self._record.read() or [r.entry for r in self._legacy()]
        self._record.write([*recorded, *(r.entry for r in refs)])
        for obj, ref in zip(objects, refs, strict=True):
            self._apply_one(obj[0], ref)
        return refs

    def prune(self, keep: Iterable[Ref], services: Collection[str]) -> list[Ref]:
        """Delete the project's objects of `services` that are not in `keep`; what was deleted."""
        kept = {r.key for r in keep}
        owned = self.owned()
        gone = [r for r in owned if r.service in services and r.key not in kept]
        deleted = [r for r in gone if self.delete(r)]
        if gone:
            dropped = {r.key for r in gone}
            self._record.write([r.entry for r in owned if r.key not in dropped])
        return deleted

    def forget(self, refs: Iterable[Ref]) -> None:
        """Drop deleted objects from the record (the record itself goes when it is empty)."""
        dropped = {r.key for r in refs}
        left = [r.entry for r in self.owned() if r.key not in dropped]
        if left:
            self._record.write(left)
        else:
            self._record.remove()

    def delete_all(self) -> int:
        """Delete every object the record lists (in every namespace, cluster-scoped ones too),
        then the record."""
        refs = self.owned()
        removed = sum(1 for ref in reversed(refs) if self.delete(ref))
        self._record.remove()
        return removed

    def owned(self) -> list[Ref]:
        """What devloop applied in this project: the record, or (no record yet) the labelled
        objects of the usual kinds in the namespace."""
        recorded = self._record.read()
        if recorded is None:
            return self._legacy()
        refs = []
        for api_version, kind_name, namespace, name, service in recorded:
            try:
                kind = self._kinds.of(api_version, kind_name)
            except DeployError:
                continue  # its kind is gone (a CRD deleted): so are its objects
            refs.append(Ref(kind, namespace or None, name, service))
        return refs

    def _legacy(self) -> list[Ref]:
        """Objects applied by a devloop that kept no record, found by their labels."""
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

    def _ref(self, obj: Obj, service: str) -> Ref:
        kind = self._kinds.of(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        namespace = str(meta.get("namespace") or self._namespace) if kind.namespaced else None
        return Ref(kind, namespace, str(meta["name"]), service)

    def _apply_one(self, obj: Obj, ref: Ref) -> None:
        body = copy.deepcopy(obj)
        meta = body["metadata"]
        meta["labels"] = {
            **(meta.get("labels") or {}),
            LABEL_SESSION: self._session,
            "applyset.kubernetes.io/part-of": self._record.id,
        }
        if ref.namespace:
            meta["namespace"] = ref.namespace
        self._rest.request(
            "PATCH",
            ref.kind.path(ref.namespace, ref.name),
            body=body,
            query={"fieldManager": FIELD_MANAGER, "force": True, "fieldValidation": "Strict"},
            content_type="application/apply-patch+yaml",
        )

    def _ensure_namespaces(self, namespaces: Iterable[str]) -> None:
        kind = self._kinds.of("v1", "Namespace")
        for ns in sorted(namespaces):
            try:
                if self._terminating(self._rest.get(kind.path(None, ns))):
                    self._wait_terminated(kind, ns)
                else:
                    continue
            except KubeApiError as exc:
                if exc.status == 403:
                    continue  # a namespaced Role may not read its namespace: assume it exists
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

    @staticmethod
    def _terminating(ns: Obj) -> bool:
        return (ns.get("status") or {}).get("phase") == "Terminating" or bool(
            (ns.get("metadata") or {}).get("deletionTimestamp")
        )

    def _wait_terminated(self, kind: Kind, ns: str) -> None:
        print(
            f"warning: namespace {ns} is still terminating; waiting up to "
            f"{TERMINATING_WAIT:.0f} s for it to go before applying",
            file=sys.stderr,
        )
        deadline = time.monotonic() + TERMINATING_WAIT
        while time.monotonic() < deadline:
            time.sleep(1.0)
            # a 404 (gone) reaches the caller, which creates it anew
            if not self._terminating(self._rest.get(kind.path(None, ns))):
                return
        raise DeployError(f"namespace {ns} is still terminating after {TERMINATING_WAIT:.0f} s")

    def _list(self, kind: Kind) -> list[Obj]:
        try:
            doc = self._rest.get(
                kind.path(self._namespace), query={"labelSelector": selector(self._labels)}
            )
        except KubeApiError as exc:
            if exc.status == 404:
                self._unserved.add((kind.api_version, kind.kind))
                return []
            if exc.status == 403:
                self._unserved.add((kind.api_version, kind.kind))
                if not self._warned:
                    self._warned = True
                    print(
                        f"warning: not allowed to list {kind.plural} in {self._namespace}: "
                        "objects of such kinds that an older devloop applied are not pruned",
                        file=sys.stderr,
                    )
                return []
            raise
        return list(doc.get("items") or [])
