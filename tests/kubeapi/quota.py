"""ResourceQuota admission for pods: the count and cpu/memory requests and limits.

Not modelled: quota status (`used` is worked out on every admission, status.used is never
written), scopes and scope selectors, object counts of other kinds, LimitRange defaults.
"""

from __future__ import annotations

import re

from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.resources import PODS, RESOURCEQUOTAS
from tests.kubeapi.store import Store

_UNITS = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}
# quota key -> (resources section, resource)
_TRACKED = {
    "requests.cpu": ("requests", "cpu"),
    "cpu": ("requests", "cpu"),
    "requests.memory": ("requests", "memory"),
    "memory": ("requests", "memory"),
    "limits.cpu": ("limits", "cpu"),
    "limits.memory": ("limits", "memory"),
}


def amount(text: object) -> float:
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(text))
    if not match or match.group(2) not in _UNITS:
        return 0.0
    return float(match.group(1)) * _UNITS[match.group(2)]


def _usage(pod: Obj, key: str) -> float | None:
    """What the pod counts against `key`; None when a container does not say (must specify)."""
    if key in ("pods", "count/pods"):
        return 1.0
    section, resource = _TRACKED[key]
    total = 0.0
    for c in pod["spec"].get("containers") or []:
        value = ((c.get("resources") or {}).get(section) or {}).get(resource)
        if value is None:
            return None
        total += amount(value)
    return total


def _active(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _show(key: str, value: float) -> str:
    if key.endswith("cpu") or key == "cpu":
        return f"{round(value * 1000)}m" if value % 1 else str(int(value))
    return str(int(value)) if value == int(value) else str(value)


def admit(store: Store, pod: Obj) -> None:
    """Raise 403 Forbidden as the ResourceQuota admission plugin does."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    quotas = store.list(RESOURCEQUOTAS, namespace)
    if not quotas:
        return
    others = [p for p in store.list(PODS, namespace) if _active(p)]
    for q in quotas:
        hard = (q.get("spec") or {}).get("hard") or {}
        keys = [k for k in sorted(hard) if k in ("pods", "count/pods") or k in _TRACKED]
        missing = [k for k in keys if _usage(pod, k) is None]
        if missing:
            names = ",".join(c["name"] for c in pod["spec"].get("containers") or [])
            raise ApiError(
                403,
                "Forbidden",
                f'pods "{name}" is forbidden: failed quota: {q["metadata"]["name"]}: must '
                f"specify {','.join(missing)} for: {names}",
                {"name": name, "kind": "pods"},
            )
        over = []
        for k in keys:
            used = sum(_usage(p, k) or 0.0 for p in others)
            wanted = _usage(pod, k) or 0.0
            if used + wanted > amount(hard[k]) + 1e-9:
                over.append((k, wanted, used, hard[k]))
        if over:
            requested = ",".join(f"{k}={_show(k, w)}" for k, w, _, _ in over)
            used_text = ",".join(f"{k}={_show(k, u)}" for k, _, u, _ in over)
            limited = ",".join(f"{k}={h}" for k, _, _, h in over)
            raise ApiError(
                403,
                "Forbidden",
                f'pods "{name}" is forbidden: exceeded quota: {q["metadata"]["name"]}, '
                f"requested: {requested}, used: {used_text}, limited: {limited}",
                {"name": name, "kind": "pods"},
            )
