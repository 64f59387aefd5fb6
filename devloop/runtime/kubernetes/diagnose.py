"""Why a pod is not ready, in words: image pulls, crash loops with their last log lines, scheduling,
probes."""

from __future__ import annotations

from devloop.clients.registry import registry_of
from devloop.errors import DevloopError
from devloop.runtime.kubernetes.rest import Obj, Rest

PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
# Waiting reasons that will not fix themselves: waiting for the deadline would only hide them.
FATAL = (
    *PULL_FAILURES,
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
)
_TRANSIENT = ("ContainerCreating", "PodInitializing")  # the pod's events say why, if anything
LOG_LINES = 10
# A volume the kubelet cannot mount because its ConfigMap or Secret does not exist: it retries
# for ever, and the object may yet be created; after this long, say so instead of waiting on.
MOUNT_PATIENCE = 10.0


def fatal(pod: Obj) -> bool:
    """A container of `pod` is stuck in a state that needs a change from the user."""
    return any(_waiting(cs).get("reason") in FATAL for cs in _statuses(pod))


def unmountable(rest: Rest, pod: Obj) -> bool:
    """`pod` waits for a volume whose ConfigMap or Secret is missing (the kubelet's FailedMount)."""
    status = pod.get("status") or {}
    if status.get("phase") != "Pending" or not any(
        _waiting(cs).get("reason") == "ContainerCreating" for cs in _statuses(pod)
    ):
        return False
    return any(
        e.get("reason") == "FailedMount" and "not found" in str(e.get("message") or "")
        for e in _events(rest, pod)
    )


def diagnose(rest: Rest, pod: Obj) -> str:
    """One paragraph on what keeps `pod` from being ready."""
    name = pod["metadata"]["name"]
    for cs in _statuses(pod):
        reason = _waiting(cs).get("reason")
        if reason in PULL_FAILURES:
            return _pull(name, _container(pod, cs), cs)
        if reason == "CrashLoopBackOff":
            return _crash(rest, pod, cs)
        if reason and reason not in _TRANSIENT:
            return (
                f"pod {name}: {_container(pod, cs)} is {reason}: {_waiting(cs).get('message', '')}"
            ).rstrip(": ")
    status = pod.get("status") or {}
    if status.get("phase") == "Pending":
        return _pending(rest, pod)
    for cs in _statuses(pod):
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated:
            return _exited(rest, pod, cs, terminated, previous=False)
    return _unready(rest, pod)


def _statuses(pod: Obj) -> list[Obj]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _container(pod: Obj, cs: Obj) -> str:
    inits = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []}
    return f"{'init container' if cs.get('name') in inits else 'container'} {cs.get('name')}"


def _waiting(cs: Obj) -> Obj:
    return dict((cs.get("state") or {}).get("waiting") or {})


def _pull(pod: str, container: str, cs: Obj) -> str:
    waiting = _waiting(cs)
    image = str(cs.get("image") or "")
    return (
        f"pod {pod}: {container} is {waiting.get('reason')}: cannot pull image "
        f"{image} "
        f"from registry {registry_of(image)}: {waiting.get('message', 'no details')}"
    )


def _crash(rest: Rest, pod: Obj, cs: Obj) -> str:
    last = (cs.get("lastState") or {}).get("terminated") or {}
    head = f"pod {pod['metadata']['name']}: {_container(pod, cs)} is in CrashLoopBackOff "
    head += f"(restarted {cs.get('restartCount', 0)} time(s))"
    return head + "; " + _exited(rest, pod, cs, last, previous=True)


def _exited(rest: Rest, pod: Obj, cs: Obj, terminated: Obj, *, previous: bool) -> str:
    code = terminated.get("exitCode", "?")
    text = f"it exited with code {code}"
    if terminated.get("reason"):
        text += f" ({terminated['reason']})"
    if str(terminated.get("message") or "").strip():
        text += f": {str(terminated['message']).strip()}"
    return text + _log_tail(rest, pod, str(cs.get("name")), previous)


def _log_tail(rest: Rest, pod: Obj, container: str, previous: bool) -> str:
    meta = pod["metadata"]
    path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/log"
    lines: list[str] = []
    for prev in (True, False) if previous else (False,):
        try:
            lines = rest.text(
                path, {"container": container, "previous": prev, "tailLines": LOG_LINES}, timeout=10
            ).splitlines()
        except DevloopError:
            continue
        if lines:
            break
    if not lines:
        return "; it wrote no log lines"
    return "; last log lines:\n" + "\n".join(f"    {line}" for line in lines[-LOG_LINES:])


def _pending(rest: Rest, pod: Obj) -> str:
    name = pod["metadata"]["name"]
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return (
                f"pod {name} is Pending: not scheduled: {cond.get('reason', '')}: "
                f"{cond.get('message', '')}"
            )
    warnings = [e for e in _events(rest, pod) if e.get("type") == "Warning"]
    if warnings:
        last = warnings[-1]
        return f"pod {name} is Pending: {last.get('reason')}: {last.get('message')}"
    return f"pod {name} is Pending (scheduled, containers not started yet)"


def _unready(rest: Rest, pod: Obj) -> str:
    name = pod["metadata"]["name"]
    probes = [e for e in _events(rest, pod) if e.get("reason") == "Unhealthy"]
    if probes:
        return f"pod {name} is running but not ready: {probes[-1].get('message')}"
    return f"pod {name} is running but not ready yet (its readiness probe has not passed)"


def _events(rest: Rest, pod: Obj) -> list[Obj]:
    meta = pod["metadata"]
    try:
        doc = rest.get(
            f"/api/v1/namespaces/{meta['namespace']}/events",
            query={"fieldSelector": f"involvedObject.name={meta['name']}"},
            timeout=10,
        )
    except DevloopError:
        return []
    mine = [
        e
        for e in doc.get("items") or []
        if (e.get("involvedObject") or {}).get("uid") in (None, meta.get("uid"))
    ]
    return sorted(mine, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
