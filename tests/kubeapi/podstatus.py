"""A pod's status (phase, conditions, container statuses) from the kubelet's view of its
containers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tests.kubeapi import meta
from tests.kubeapi.meta import Obj
from tests.kubeapi.probes import Prober


@dataclass
class PullState:
    """An image pull in the background, and its back-off after failures."""

    thread: threading.Thread | None = None
    result: tuple[bool, str] | None = None
    failures: int = 0
    backoff_until: float = 0.0
    error_until: float = 0.0
    began: float = 0.0


@dataclass
class Run:
    """What the kubelet knows about one container of a pod, across its restarts."""

    spec: Obj
    attempt: int = 0  # Docker containers created so far
    current: str | None = None  # the newest container (running or exited)
    previous: str | None = None  # the one before: `logs --previous`
    running: bool = False
    exited: bool = False  # set by the Docker event thread
    started_at: str | None = None
    image_ready: str | None = None
    image_id: str = ""
    waiting: tuple[str, str] = ("ContainerCreating", "")
    terminated: Obj | None = None  # final state, when it will not restart
    last_terminated: Obj | None = None
    restart_count: int = 0
    crashes: int = 0
    backoff_until: float = 0.0
    done: bool = False
    ready: bool = False
    readiness: Prober | None = None
    liveness: Prober | None = None
    startup: Prober | None = None
    pull: PullState = field(default_factory=PullState)
    init: bool = False  # an init container: runs to completion before the others start

    @property
    def succeeded(self) -> bool:
        return self.done and (self.terminated or {}).get("exitCode") == 0

    @property
    def started(self) -> bool:
        return self.running and (self.startup is None or self.startup.result)


def _condition(
    type_: str, ok: bool, previous: list[Obj], reason: str = "", message: str = ""
) -> Obj:
    status = "True" if ok else "False"
    before = next((c for c in previous if c.get("type") == type_), None)
    since = (
        before["lastTransitionTime"] if before and before.get("status") == status else meta.now()
    )
    cond: Obj = {
        "type": type_,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": since,
    }
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def container_status(run: Run) -> Obj:
    c = run.spec
    status: Obj = {
        "name": c["name"],
        "image": c["image"],
        "imageID": run.image_id,
        "ready": run.ready,
        "restartCount": run.restart_count,
        "started": run.started,
        "lastState": {"terminated": run.last_terminated} if run.last_terminated else {},
    }
    if run.current:
        status["containerID"] = f"docker://{run.current}"
    if run.running:
        status["state"] = {"running": {"startedAt": run.started_at}}
    elif run.terminated:
        status["state"] = {"terminated": run.terminated}
    else:
        reason, message = run.waiting
        status["state"] = {
            "waiting": {"reason": reason} | ({"message": message} if message else {})
        }
    return status


def phase(pod: Obj, runs: list[Run]) -> str:
    if any(r.attempt == 0 for r in runs):
        return "Pending"
    if pod["spec"].get("restartPolicy", "Always") == "Always" or not all(r.done for r in runs):
        return "Running"
    codes = [(r.terminated or {}).get("exitCode", 1) for r in runs]
    return "Succeeded" if all(code == 0 for code in codes) else "Failed"


def compute(
    pod: Obj,
    runs: list[Run],
    pod_ip: str | None,
    host_ip: str | None,
    sandbox_ready: bool,
    init_runs: list[Run] | None = None,
) -> Obj:
    """The full status block the kubelet would report for this pod now."""
    previous = (pod.get("status") or {}).get("conditions") or []
    init_runs = init_runs or []
    incomplete = [r.spec["name"] for r in init_runs if not r.succeeded]
    pod_phase = phase(pod, runs)
    if incomplete:
        failed = any(r.done and not r.succeeded for r in init_runs)
        pod_phase = "Failed" if failed else "Pending"
        for r in runs:
            if r.attempt == 0:
                r.waiting = ("PodInitializing", "")
    unready = [r.spec["name"] for r in runs if not r.ready]
    if pod_phase == "Succeeded":
        reason, message = "PodCompleted", ""
    else:
        reason = "ContainersNotReady" if unready else ""
        message = f"containers with unready status: [{' '.join(unready)}]" if unready else ""
    status: Obj = {
        "phase": pod_phase,
        "conditions": [
            _condition("PodReadyToStartContainers", sandbox_ready, previous),
            _condition(
                "Initialized",
                not incomplete,
                previous,
                "ContainersNotInitialized" if incomplete else "",
                f"containers with incomplete status: [{' '.join(incomplete)}]"
                if incomplete
                else "",
            ),
            _condition("Ready", not unready, previous, reason, message),
            _condition("ContainersReady", not unready, previous, reason, message),
            _condition("PodScheduled", True, previous),
        ],
        "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
        "startTime": (pod.get("status") or {}).get("startTime") or meta.now(),
        "containerStatuses": [container_status(r) for r in runs],
    }
    if init_runs:
        status["initContainerStatuses"] = [
            container_status(r) | {"ready": r.succeeded} for r in init_runs
        ]
    if host_ip:
        status |= {"hostIP": host_ip, "hostIPs": [{"ip": host_ip}]}
    if pod_ip:
        status |= {"podIP": pod_ip, "podIPs": [{"ip": pod_ip}]}
    return status


def unschedulable(pod: Obj, message: str) -> Obj:
    previous = (pod.get("status") or {}).get("conditions") or []
    return {
        "phase": "Pending",
        "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
        "conditions": [_condition("PodScheduled", False, previous, "Unschedulable", message)],
    }
