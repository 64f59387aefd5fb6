"""The controller manager: namespace finalization, garbage collection, Deployments, ReplicaSets."""

from __future__ import annotations

import logging
import threading

from tests.kubeapi.dockerops import Docker
from tests.kubeapi.events import Recorder
from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.resources import DEPLOYMENTS, NAMESPACES, PODS, REPLICASETS, TYPES
from tests.kubeapi.services import ServiceProxies
from tests.kubeapi.store import Change, Store
from tests.kubeapi.workloads import Deployments, ReplicaSets

log = logging.getLogger(__name__)


class Controllers:
    """Reconciles after every change (batched), and once a second for deadlines."""

    def __init__(self, store: Store, docker: Docker, recorder: Recorder) -> None:
        self.store, self.docker = store, docker
        self.deployments = Deployments(store, recorder)
        self.replicasets = ReplicaSets(store, recorder)
        # namespaces kept in Terminating (as a finalizer that never finishes would) until released
        self.held_namespaces: set[str] = set()
        self.services: ServiceProxies | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="controllers", daemon=True)

    def start(self) -> None:
        self.store.add_listener(self._on_change)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _on_change(self, change: Change) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._stop.wait(0.02)  # let a burst of changes land before reconciling once
            self._wake.clear()
            try:
                self.reconcile()
            except Exception:
                log.exception("reconcile failed")

    def reconcile(self) -> None:
        self._namespaces()
        if self.services is not None:
            self._guard(self.services.reconcile)
        self._collect_garbage()
        pods = self.store.list(PODS)
        for d in self.store.list(DEPLOYMENTS):
            if "deletionTimestamp" in d["metadata"]:
                continue
            all_rs = self.store.list(REPLICASETS, d["metadata"]["namespace"])
            ns_pods = [p for p in pods if p["metadata"]["namespace"] == d["metadata"]["namespace"]]
            self._guard(self.deployments.sync, d, all_rs, ns_pods)
        pods = self.store.list(PODS)
        for rs in self.store.list(REPLICASETS):
            ns_pods = [p for p in pods if p["metadata"]["namespace"] == rs["metadata"]["namespace"]]
            self._guard(self.replicasets.sync, rs, ns_pods)

    @staticmethod
    def _guard(fn: object, *args: object) -> None:
        # An object deleted between list and write is not an error: the next pass sees it gone.
        try:
            fn(*args)  # type: ignore[operator]
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    def _collect_garbage(self) -> None:
        """Delete dependents whose owners are gone (background propagation)."""
        with self.store.lock:
            uids = {o["metadata"]["uid"] for rt in TYPES for o in self.store.list(rt)}
            for rt in (REPLICASETS, PODS):
                for obj in self.store.list(rt):
                    refs = obj["metadata"].get("ownerReferences") or []
                    if refs and not any(r.get("uid") in uids for r in refs):
                        self.delete(rt, obj)

    def delete(self, rt: object, obj: Obj) -> None:
        md = obj["metadata"]
        if rt is PODS:
            if "deletionTimestamp" not in md:
                grace = int(obj["spec"].get("terminationGracePeriodSeconds", 30))
                self.store.mark_deleted(PODS, md["namespace"], md["name"], grace)
        else:
            self.store.remove(rt, md.get("namespace", ""), md["name"])  # type: ignore[arg-type]

    def _namespaces(self) -> None:
        for ns in self.store.list(NAMESPACES):
            if "deletionTimestamp" not in ns["metadata"]:
                continue
            name = ns["metadata"]["name"]
            left = 0
            for rt in TYPES:
                if not rt.namespaced:
                    continue
                for obj in self.store.list(rt, name):
                    left += 1
                    self.delete(rt, obj)
            if left == 0 and name not in self.held_namespaces:
                self.docker.remove_network(name)
                self.store.remove(NAMESPACES, "", name)
