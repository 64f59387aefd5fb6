"""Deployment and ReplicaSet controllers: template hash, rolling update, status and conditions."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time

from tests.kubeapi import defaults, meta, podsecurity, quota
from tests.kubeapi.events import Recorder
from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.resources import DEPLOYMENTS, PODS, REPLICASETS
from tests.kubeapi.selectors import match_selector
from tests.kubeapi.store import Store

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


def template_hash(template: Obj) -> str:
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    return meta.safe_encode(hashlib.sha256(data).digest(), 10)


def owned_by(obj: Obj, owner: Obj) -> bool:
    uid = owner["metadata"]["uid"]
    return any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def owner_ref(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _active(pod: Obj) -> bool:
    return "deletionTimestamp" not in pod["metadata"] and (pod.get("status") or {}).get(
        "phase"
    ) not in ("Succeeded", "Failed")


def _nonzero(status: Obj) -> Obj:
    """Deployment and ReplicaSet status counters are omitempty: zeros are left out."""
    return {k: v for k, v in status.items() if v != 0}


def _scaled(value: int | str, total: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    fraction = int(value.rstrip("%")) * total / 100
    return math.ceil(fraction) if round_up else math.floor(fraction)


class ReplicaSets:
    """Keeps spec.replicas pods per ReplicaSet and reports how many are ready."""

    def __init__(self, store: Store, recorder: Recorder) -> None:
        self.store, self.recorder = store, recorder

    def sync(self, rs: Obj, pods: list[Obj]) -> None:
        mine = [p for p in pods if owned_by(p, rs)]
        active = [p for p in mine if _active(p)]
        want = int(rs["spec"].get("replicas", 1))
        for _ in range(want - len(active)):
            self._create_pod(rs)
        if len(active) > want:
            # Delete the least useful first: not ready, then newest.
            victims = sorted(
                active, key=lambda p: (is_ready(p), p["metadata"]["creationTimestamp"])
            )
            for pod in victims[: len(active) - want]:
                self._delete_pod(rs, pod)
            active = [p for p in active if p not in victims[: len(active) - want]]
        ready = sum(1 for p in active if is_ready(p))
        status = _nonzero(
            {
                "replicas": len(active),
                "fullyLabeledReplicas": len(active),
                "readyReplicas": ready,
                "availableReplicas": ready,
            }
        )
        status["observedGeneration"] = rs["metadata"].get("generation", 1)
        status.setdefault("replicas", 0)
        before = {k: v for k, v in (rs.get("status") or {}).items() if k != "conditions"}
        if before != status:

            def put(obj: Obj) -> None:
                conditions = (obj.get("status") or {}).get("conditions")
                obj["status"] = status | ({"conditions": conditions} if conditions else {})

            self.store.mutate(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], put)

    def _create_pod(self, rs: Obj) -> None:
        template = copy.deepcopy(rs["spec"]["template"])
        md = template.get("metadata") or {}
        md.pop("creationTimestamp", None)
        name = f"{rs['metadata']['name']}-{meta.random_suffix()}"
        md |= {
            "name": name,
            "namespace": rs["metadata"]["namespace"],
            "ownerReferences": [owner_ref(rs)],
        }
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": template["spec"]}
        defaults.prepare(PODS, pod, None)
        try:
            podsecurity.admit(self.store, pod)
            quota.admit(self.store, pod)
        except ApiError as exc:
            self._failed_create(rs, exc.message)
            return
        try:
            self.store.create(PODS, pod)
        except ApiError:
            return  # a name collision: the next pass tries again
        self._failed_create(rs, None)
        self.recorder.record(
            rs, "Normal", "SuccessfulCreate", f"Created pod: {name}", "replicaset-controller"
        )

    def _failed_create(self, rs: Obj, message: str | None) -> None:
        """The ReplicaFailure condition and FailedCreate event the real controller writes."""
        md = rs["metadata"]
        if message is not None:
            self.recorder.record(
                rs, "Warning", "FailedCreate", f"Error creating: {message}", "replicaset-controller"
            )

        def put(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            others = [c for c in status.get("conditions") or [] if c["type"] != "ReplicaFailure"]
            if message is not None:
                others.append(
                    {
                        "type": "ReplicaFailure",
                        "status": "True",
                        "lastTransitionTime": meta.now(),
                        "reason": "FailedCreate",
                        "message": message,
                    }
                )
            if others:
                status["conditions"] = others
            else:
                status.pop("conditions", None)

        live = self.store.find(REPLICASETS, md["namespace"], md["name"])
        had = any(
            c["type"] == "ReplicaFailure"
            for c in ((live or {}).get("status") or {}).get("conditions") or []
        )
        if live is not None and (message is not None or had):
            self.store.mutate(REPLICASETS, md["namespace"], md["name"], put)

    def _delete_pod(self, rs: Obj, pod: Obj) -> None:
        grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        self.store.mark_deleted(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], grace)
        self.recorder.record(
            rs,
            "Normal",
            "SuccessfulDelete",
            f"Deleted pod: {pod['metadata']['name']}",
            "replicaset-controller",
        )


class Deployments:
    """Rolls Deployments through ReplicaSets and reports rollout status and conditions."""

    def __init__(self, store: Store, recorder: Recorder) -> None:
        self.store, self.recorder = store, recorder
        self._progress: dict[str, float] = {}  # uid -> monotonic time of the last progress

    def sync(self, d: Obj, all_rs: list[Obj], pods: list[Obj]) -> None:
        owned = [rs for rs in all_rs if owned_by(rs, d)]
        h = template_hash(d["spec"]["template"])
        new = next(
            (rs for rs in owned if rs["metadata"].get("labels", {}).get(HASH_LABEL) == h), None
        )
        created = new is None
        if new is None:
            new = self._create_rs(d, h, owned)
            owned.append(new)
        olds = [rs for rs in owned if rs is not new]
        if not d["spec"].get("paused"):
            self._scale(d, new, olds, pods)
        self._status(d, new, owned, pods, created)

    def _create_rs(self, d: Obj, h: str, owned: list[Obj]) -> Obj:
        template = copy.deepcopy(d["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        revision = 1 + max(
            (int(rs["metadata"].get("annotations", {}).get(REVISION, 0)) for rs in owned), default=0
        )
        md = d["metadata"]
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{md['name']}-{h}",
                "namespace": md["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    REVISION: str(revision),
                    "deployment.kubernetes.io/desired-replicas": str(d["spec"]["replicas"]),
                },
                "ownerReferences": [owner_ref(d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        defaults.prepare(REPLICASETS, rs, None)
        return self.store.create(REPLICASETS, rs)

    def _set_replicas(self, d: Obj, rs: Obj, count: int) -> None:
        before = int(rs["spec"].get("replicas", 0))
        if count == before:
            return
        rs["spec"]["replicas"] = count
        self.store.mutate(
            REPLICASETS,
            rs["metadata"]["namespace"],
            rs["metadata"]["name"],
            lambda obj: obj["spec"].__setitem__("replicas", count),
        )
        verb = "up" if count > before else "down"
        self.recorder.record(
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {verb} replica set {rs['metadata']['name']} from {before} to {count}",
            "deployment-controller",
        )

    def _scale(self, d: Obj, new: Obj, olds: list[Obj], pods: list[Obj]) -> None:
        replicas = int(d["spec"]["replicas"])
        strategy = d["spec"].get("strategy") or {}
        if strategy.get("type") == "Recreate":
            for rs in olds:
                self._set_replicas(d, rs, 0)
            if not any(owned_by(p, rs) for p in pods for rs in olds):
                self._set_replicas(d, new, replicas)
            return
        rolling = strategy.get("rollingUpdate") or {}
        surge = _scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
        unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        self._scale_up(d, new, olds, replicas, surge)
        self._scale_down(d, new, olds, pods, replicas - unavailable)

    def _scale_up(self, d: Obj, new: Obj, olds: list[Obj], replicas: int, surge: int) -> None:
        new_count = int(new["spec"].get("replicas", 0))
        current = new_count + sum(int(rs["spec"].get("replicas", 0)) for rs in olds)
        if new_count > replicas:
            self._set_replicas(d, new, replicas)
        elif current < replicas + surge:
            self._set_replicas(
                d, new, new_count + min(replicas + surge - current, replicas - new_count)
            )

    def _scale_down(
        self, d: Obj, new: Obj, olds: list[Obj], pods: list[Obj], min_available: int
    ) -> None:
        """Old ReplicaSets shrink only as far as availability allows; unhealthy pods go first."""

        def available(rs: Obj) -> int:
            return sum(1 for p in pods if owned_by(p, rs) and _active(p) and is_ready(p))

        olds = sorted(
            (rs for rs in olds if int(rs["spec"].get("replicas", 0)) > 0),
            key=lambda r: r["metadata"]["creationTimestamp"],
        )
        if not olds:
            return
        all_count = sum(int(rs["spec"].get("replicas", 0)) for rs in [new, *olds])
        new_unavailable = max(0, int(new["spec"].get("replicas", 0)) - available(new))
        budget = all_count - min_available - new_unavailable
        for rs in olds:
            unhealthy = int(rs["spec"]["replicas"]) - available(rs)
            cut = min(max(0, budget), max(0, unhealthy))
            if cut:
                self._set_replicas(d, rs, int(rs["spec"]["replicas"]) - cut)
                budget -= cut
        spare = sum(available(rs) for rs in [new, *olds]) - min_available
        for rs in olds:
            cut = min(int(rs["spec"]["replicas"]), max(0, spare))
            if cut:
                self._set_replicas(d, rs, int(rs["spec"]["replicas"]) - cut)
                spare -= cut

    def _status(self, d: Obj, new: Obj, owned: list[Obj], pods: list[Obj], created: bool) -> None:
        spec = d["spec"]
        replicas = int(spec["replicas"])
        mine = [p for p in pods if _active(p) and any(owned_by(p, rs) for rs in owned)]
        updated = [p for p in mine if owned_by(p, new)]
        ready = sum(1 for p in mine if is_ready(p))
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
        old = d.get("status") or {}
        total_spec = sum(int(rs["spec"].get("replicas", 0)) for rs in owned)
        counts = {
            "replicas": len(mine),
            "updatedReplicas": len(updated),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, total_spec - ready),
        }
        uid = d["metadata"]["uid"]
        progressed = (
            created
            or any(
                counts[k] > old.get(k, 0)
                for k in ("updatedReplicas", "readyReplicas", "availableReplicas")
            )
            or (counts["replicas"] - counts["updatedReplicas"])
            < (old.get("replicas", 0) - old.get("updatedReplicas", 0))
        )
        if progressed or uid not in self._progress:
            self._progress[uid] = time.monotonic()
        complete = len(updated) == replicas and len(mine) == replicas and ready >= replicas
        conditions = self._conditions(
            d, new, ready >= replicas - max_unavailable, complete, progressed, created
        )
        status = _nonzero(counts) | {
            "observedGeneration": d["metadata"].get("generation", 1),
            "conditions": conditions,
        }
        revision = new["metadata"].get("annotations", {}).get(REVISION)

        def put(obj: Obj) -> None:
            obj["status"] = status
            if revision:
                obj["metadata"].setdefault("annotations", {})[REVISION] = revision

        if old != status or d["metadata"].get("annotations", {}).get(REVISION) != revision:
            self.store.mutate(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"], put)

    def _conditions(
        self, d: Obj, new: Obj, available: bool, complete: bool, progressed: bool, created: bool
    ) -> list[Obj]:
        previous = {c["type"]: c for c in (d.get("status") or {}).get("conditions") or []}
        name = new["metadata"]["name"]
        if available:
            avail = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            avail = (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        deadline = float(d["spec"].get("progressDeadlineSeconds", 600))
        stalled = time.monotonic() - self._progress[d["metadata"]["uid"]] > deadline
        if complete:
            prog = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{name}" has successfully progressed.',
            )
        elif created:
            prog = ("True", "NewReplicaSetCreated", f'Created new replica set "{name}"')
        elif stalled:
            prog = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{name}" has timed out progressing.',
            )
        elif (
            progressed
            or previous.get("Progressing", {}).get("reason") != "ProgressDeadlineExceeded"
        ):
            prog = ("True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.')
        else:
            prog = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{name}" has timed out progressing.',
            )
        return [
            self._condition("Available", avail, previous.get("Available"), False),
            self._condition("Progressing", prog, previous.get("Progressing"), progressed),
        ]

    @staticmethod
    def _condition(
        type_: str, value: tuple[str, str, str], before: Obj | None, touched: bool
    ) -> Obj:
        status, reason, message = value
        stamp = meta.now()
        same = before is not None and before.get("status") == status
        unchanged = same and before is not None and before.get("reason") == reason and not touched
        return {
            "type": type_,
            "status": status,
            "lastUpdateTime": before["lastUpdateTime"] if unchanged and before else stamp,
            "lastTransitionTime": before["lastTransitionTime"] if same and before else stamp,
            "reason": reason,
            "message": message,
        }


def selects(d: Obj, pod: Obj) -> bool:
    return match_selector(d["spec"].get("selector"), pod["metadata"].get("labels") or {})
