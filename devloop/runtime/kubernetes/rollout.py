"""Wait for workloads to roll out; on a stuck pod or at the deadline, explain instead of timing
out."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from devloop.errors import DeployError
from devloop.runtime.kubernetes.apply import Ref
from devloop.runtime.kubernetes.diagnose import MOUNT_PATIENCE, diagnose, fatal, unmountable
from devloop.runtime.kubernetes.pods import is_ready, list_pods
from devloop.runtime.kubernetes.rest import KubeApiError, Obj, Rest, selector

POLL = 0.5
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


@dataclass
class Progress:
    """One workload's rollout as last seen: done, and the pods of its current template."""

    ref: Ref
    done: bool = False
    observed: bool = False  # the controller has seen the latest spec, so `pods` are the new ones
    pods: list[Obj] = field(default_factory=list)
    note: str = ""
    failure: str = ""  # why its pods cannot be created (quota, admission, LimitRange)


class Rollout:
    """Checks the rollout of applied workloads, by polling their status and their pods."""

    def __init__(self, rest: Rest) -> None:
        self._rest = rest
        self._pending_since: dict[str, float] = {}  # pod uid → first seen Pending (monotonic)

    def wait(
        self,
        workloads: Mapping[str, Sequence[Ref]],
        timeout: float,
        cancel: threading.Event | None = None,
    ) -> None:
        """Return when every workload is rolled out, or when `cancel` is set; else DeployError."""
        deadline = time.monotonic() + timeout
        while True:
            pending = {
                s: [p for p in map(self.progress, refs) if not p.done]
                for s, refs in workloads.items()
            }
            pending = {s: ps for s, ps in pending.items() if ps}
            if not pending:
                return
            stuck = {
                s: ps
                for s, ps in pending.items()
                if any(p.failure or (p.observed and any(map(self._stuck, p.pods))) for p in ps)
            }
            if stuck:
                raise DeployError(self._report(stuck, "cannot become ready"))
            if time.monotonic() >= deadline:
                raise DeployError(
                    self._report(pending, f"did not become ready within {timeout:.0f} s")
                )
            if cancel is not None and cancel.wait(POLL):
                return
            if cancel is None:
                time.sleep(POLL)

    def _stuck(self, pod: Obj) -> bool:
        """A pod that will not start without a change from the user."""
        if fatal(pod):
            return True
        if (pod.get("status") or {}).get("phase") != "Pending":
            return False
        since = self._pending_since.setdefault(str(pod["metadata"].get("uid")), time.monotonic())
        return time.monotonic() - since >= MOUNT_PATIENCE and unmountable(self._rest, pod)

    def progress(self, ref: Ref) -> Progress:
        try:
            obj = self._rest.get(ref.kind.path(ref.namespace, ref.name))
        except KubeApiError as exc:
            if exc.status == 404:
                return Progress(ref, note=f"{ref} does not exist")
            raise
        check = _CHECKS.get(ref.kind.kind)
        if check is None:
            return Progress(ref, done=True)
        done, note = check(obj)
        meta, status = obj["metadata"], obj.get("status") or {}
        observed = int(status.get("observedGeneration", 0)) >= int(meta.get("generation", 1))
        pods, failure = ([], "") if done else self._pods(ref, obj)
        if failure:
            note = f"{ref}: pods cannot be created: {failure}"
        return Progress(ref, done, observed or ref.kind.kind == "Pod", pods, note, failure)

    def _pods(self, ref: Ref, obj: Obj) -> tuple[list[Obj], str]:
        """The pods of the current template, and why the controller cannot create them."""
        if ref.kind.kind == "Pod":
            return [obj], ""
        match = {
            str(k): str(v)
            for k, v in ((obj["spec"].get("selector") or {}).get("matchLabels") or {}).items()
        }
        if not match:
            return [], ""
        failure = _replica_failure(obj)
        if ref.kind.kind == "Deployment":
            newest = self._newest(ref, obj, match)
            if newest is None:
                return [], failure
            failure = _replica_failure(newest)
            current = (newest["metadata"].get("labels") or {}).get(HASH_LABEL)
            if current is None:
                return [], failure
            match[HASH_LABEL] = current
        pods, _ = list_pods(self._rest, str(ref.namespace), match)
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")], failure

    def _newest(self, ref: Ref, deployment: Obj, match: dict[str, str]) -> Obj | None:
        """The Deployment's newest ReplicaSet: its pods are the ones rolling out."""
        doc = self._rest.get(
            f"/apis/apps/v1/namespaces/{ref.namespace}/replicasets",
            query={"labelSelector": selector(match)},
        )
        uid = deployment["metadata"].get("uid")
        owned = [
            rs
            for rs in doc.get("items") or []
            if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])
        ]
        if not owned:
            return None
        newest: Obj = max(
            owned,
            key=lambda rs: (
                int((rs["metadata"].get("annotations") or {}).get(REVISION, 0)),
                str(rs["metadata"].get("creationTimestamp", "")),
            ),
        )
        return newest

    def _report(self, pending: Mapping[str, list[Progress]], what: str) -> str:
        parts = []
        for service, progresses in pending.items():
            lines = []
            for p in progresses:
                if p.failure:
                    lines.append(p.note)
                    continue
                bad = [pod for pod in p.pods if not is_ready(pod)]
                lines += [diagnose(self._rest, pod) for pod in bad] or [
                    p.note or f"{p.ref} has no pods yet"
                ]
            parts.append(f"service '{service}' {what}:\n  " + "\n  ".join(lines))
        return "\n".join(parts)


def _deployment(d: Obj) -> tuple[bool, str]:
    want = int(d["spec"].get("replicas", 1))
    s = d.get("status") or {}
    updated, total, available = (
        int(s.get(k, 0)) for k in ("updatedReplicas", "replicas", "availableReplicas")
    )
    if int(s.get("observedGeneration", 0)) < int(d["metadata"].get("generation", 1)):
        return (
            False,
            f"Deployment {d['metadata']['name']}: the controller has not seen the new spec yet",
        )
    for cond in s.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return False, f"Deployment {d['metadata']['name']}: {cond.get('message')}"
    done = updated >= want and total <= updated and available >= want
    return (
        done,
        f"Deployment {d['metadata']['name']}: {updated}/{want} updated, {available} available",
    )


def _stateful_set(s: Obj) -> tuple[bool, str]:
    want = int(s["spec"].get("replicas", 1))
    st = s.get("status") or {}
    observed = int(st.get("observedGeneration", 0)) >= int(s["metadata"].get("generation", 1))
    ready, updated = int(st.get("readyReplicas", 0)), int(st.get("updatedReplicas", 0))
    return (
        observed and ready >= want and updated >= want,
        f"StatefulSet {s['metadata']['name']}: {ready}/{want} ready",
    )


def _daemon_set(d: Obj) -> tuple[bool, str]:
    st = d.get("status") or {}
    observed = int(st.get("observedGeneration", 0)) >= int(d["metadata"].get("generation", 1))
    want = int(st.get("desiredNumberScheduled", 0))
    updated, available = int(st.get("updatedNumberScheduled", 0)), int(st.get("numberAvailable", 0))
    return (
        observed and updated >= want and available >= want,
        f"DaemonSet {d['metadata']['name']}: {available}/{want} available",
    )


def _pod(p: Obj) -> tuple[bool, str]:
    return is_ready(
        p
    ), f"Pod {p['metadata']['name']} is {(p.get('status') or {}).get('phase', 'Pending')}"


_CHECKS = {
    "Deployment": _deployment,
    "StatefulSet": _stateful_set,
    "DaemonSet": _daemon_set,
    "Pod": _pod,
}


def _replica_failure(obj: Obj) -> str:
    """The message of a ReplicaFailure condition (a ReplicaSet or StatefulSet whose controller
    was refused a pod: quota, Pod Security admission, LimitRange), or ""."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return str(cond.get("message") or cond.get("reason") or "ReplicaFailure")
    return ""
