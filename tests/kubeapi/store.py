"""In-memory object storage with resourceVersions, history and watch fan-out."""

from __future__ import annotations

import builtins
import collections
import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tests.kubeapi import meta
from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.resources import ResourceType

HISTORY = 20000


@dataclass(frozen=True)
class Change:
    """One committed change: what a watch sees as ADDED / MODIFIED / DELETED."""

    type: str
    rv: int
    rt: ResourceType
    obj: Obj
    old: Obj | None


Listener = Callable[[Change], None]


def key_of(obj: Obj) -> tuple[str, str]:
    md = obj["metadata"]
    return md.get("namespace", ""), md["name"]


class Store:
    """Every object of every type; all mutations go through here under one lock."""

    def __init__(self, history: int = HISTORY) -> None:
        self.lock = threading.RLock()
        self._rv = 1
        self._objects: dict[str, dict[tuple[str, str], Obj]] = collections.defaultdict(dict)
        self._history: collections.deque[Change] = collections.deque(maxlen=history)
        self._compacted = 0  # changes up to this resourceVersion are no longer in the history
        self._listeners: list[Listener] = []

    @property
    def resource_version(self) -> int:
        return self._rv

    def remove_listener(self, listener: Listener) -> None:
        with self.lock:
            self._listeners.remove(listener)

    def add_listener(self, listener: Listener) -> None:
        with self.lock:
            self._listeners.append(listener)

    def find(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self._objects[rt.key].get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.find(rt, namespace, name)
        if obj is None:
            raise meta.not_found(rt.plural, rt.group, name)
        return obj

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        match: Callable[[Obj], bool] | None = None,
    ) -> builtins.list[Obj]:
        with self.lock:
            items = [
                o
                for (ns, _), o in sorted(self._objects[rt.key].items())
                if namespace in (None, "", ns) and (match is None or match(o))
            ]
            return copy.deepcopy(items)

    def changes_since(self, rv: int) -> builtins.list[Change]:
        """Committed changes after `rv`; 410 Expired when history no longer reaches back."""
        with self.lock:
            if rv < self._compacted:
                raise ApiError(
                    410, "Expired", f"too old resource version: {rv} ({self._compacted})"
                )
            return [c for c in self._history if c.rv > rv]

    def _commit(self, type_: str, rt: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        bucket = self._objects[rt.key]
        if type_ == "DELETED":
            bucket.pop(key_of(obj), None)
        else:
            bucket[key_of(obj)] = obj
        change = Change(type_, self._rv, rt, copy.deepcopy(obj), old)
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        self._history.append(change)
        for listener in list(self._listeners):
            listener(change)
        return copy.deepcopy(obj)

    def create(self, rt: ResourceType, obj: Obj) -> Obj:
        """Store a new object, filling in uid, creationTimestamp and generation."""
        with self.lock:
            md = obj["metadata"]
            if key_of(obj) in self._objects[rt.key]:
                raise meta.already_exists(rt.plural, rt.group, md["name"])
            md["uid"] = meta.new_uid()
            md["creationTimestamp"] = meta.now()
            if rt.has_generation:
                md["generation"] = 1
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            return self._commit("ADDED", rt, obj, None)

    def update(self, rt: ResourceType, obj: Obj, check_rv: bool = True) -> Obj:
        """Replace an object; keeps identity fields and bumps generation when the spec changed."""
        with self.lock:
            old = self._objects[rt.key].get(key_of(obj))
            if old is None:
                raise meta.not_found(rt.plural, rt.group, obj["metadata"]["name"])
            wanted = obj["metadata"].get("resourceVersion")
            if check_rv and wanted and wanted != old["metadata"]["resourceVersion"]:
                raise meta.conflict(rt.plural, rt.group, obj["metadata"]["name"])
            for field in (
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ):
                if field in old["metadata"]:
                    obj["metadata"][field] = old["metadata"][field]
            if rt.has_generation and _spec_changed(old, obj):
                obj["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if _comparable(obj) == _comparable(old):
                return copy.deepcopy(old)  # a no-op write does not bump resourceVersion
            return self._commit("MODIFIED", rt, obj, copy.deepcopy(old))

    def mutate(
        self, rt: ResourceType, namespace: str, name: str, change: Callable[[Obj], None]
    ) -> Obj:
        """Atomic read-modify-write: `change` edits a copy of the live object in place."""
        with self.lock:
            obj = self.get(rt, namespace, name)
            change(obj)
            return self.update(rt, obj, check_rv=False)

    def mark_deleted(self, rt: ResourceType, namespace: str, name: str, grace: int) -> Obj:
        """Graceful deletion: set deletionTimestamp; the owner of the object finishes it."""

        def mark(obj: Obj) -> None:
            obj["metadata"].setdefault("deletionTimestamp", meta.now())
            obj["metadata"].setdefault("deletionGracePeriodSeconds", grace)

        with self.lock:
            obj = self.get(rt, namespace, name)
            if "deletionTimestamp" in obj["metadata"]:
                return obj
            mark(obj)
            old = self._objects[rt.key][key_of(obj)]
            return self._commit("MODIFIED", rt, obj, copy.deepcopy(old))

    def remove(
        self, rt: ResourceType, namespace: str, name: str, uid: str | None = None
    ) -> Obj | None:
        """Delete for good (a DELETED event); None if gone already or replaced (uid differs)."""
        with self.lock:
            obj = self._objects[rt.key].get((namespace, name))
            if obj is None or (uid is not None and obj["metadata"]["uid"] != uid):
                return None
            obj = copy.deepcopy(obj)
            return self._commit("DELETED", rt, obj, copy.deepcopy(obj))


def _spec_changed(old: Obj, new: Obj) -> bool:
    def body(o: Obj) -> Obj:
        return {k: v for k, v in o.items() if k not in ("metadata", "status", "apiVersion", "kind")}

    return body(old) != body(new)


def _comparable(obj: Obj) -> Obj:
    """The object without managedFields timestamps, which a no-op apply would refresh."""
    clean = copy.deepcopy(obj)
    for entry in clean["metadata"].get("managedFields") or []:
        entry.pop("time", None)
    return clean
