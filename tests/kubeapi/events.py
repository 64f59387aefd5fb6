"""Recording core/v1 Events about objects, deduplicated the way the event recorder does."""

from __future__ import annotations

import contextlib
import time

from tests.kubeapi import meta
from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.resources import EVENTS, NAMESPACES
from tests.kubeapi.store import Store


class Recorder:
    """Writes Events; a repeat of the same (object, reason, message) bumps `count`."""

    def __init__(self, store: Store, host: str) -> None:
        self.store = store
        self.host = host

    def record(self, obj: Obj, type_: str, reason: str, message: str, component: str) -> None:
        md = obj["metadata"]
        namespace = md.get("namespace") or "default"
        with self.store.lock:
            ns = self.store.find(NAMESPACES, "", namespace)
            if ns is None or "deletionTimestamp" in ns["metadata"]:
                return
            same = self.store.list(
                EVENTS,
                namespace,
                lambda e: (
                    e["involvedObject"].get("uid") == md.get("uid")
                    and e["reason"] == reason
                    and e["message"] == message
                ),
            )
            if same:
                self._bump(same[0])
            else:
                self.store.create(
                    EVENTS, self._new(obj, namespace, type_, reason, message, component)
                )

    def _bump(self, event: Obj) -> None:
        def bump(e: Obj) -> None:
            e["count"] = e.get("count", 1) + 1
            e["lastTimestamp"] = meta.now()

        with contextlib.suppress(ApiError):  # deleted meanwhile, e.g. by a namespace being emptied
            self.store.mutate(
                EVENTS, event["metadata"]["namespace"], event["metadata"]["name"], bump
            )

    def _new(
        self, obj: Obj, namespace: str, type_: str, reason: str, message: str, component: str
    ) -> Obj:
        md = obj["metadata"]
        stamp = meta.now()
        involved = {
            "kind": obj.get("kind"),
            "namespace": namespace,
            "name": md["name"],
            "uid": md.get("uid"),
            "apiVersion": obj.get("apiVersion"),
            "resourceVersion": md.get("resourceVersion"),
        }
        source: Obj = {"component": component}
        if component == "kubelet":
            source["host"] = self.host
        return {
            "metadata": {"name": f"{md['name']}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": source,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": self.host if component == "kubelet" else "",
        }
