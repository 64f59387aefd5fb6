"""Pod Security admission: a namespace's `pod-security.kubernetes.io/enforce` label (baseline or
restricted) refuses pods that violate the level, with the plugin's message.

Modelled checks: baseline: privileged, host namespaces, hostPath volumes, hostPort; restricted
adds allowPrivilegeEscalation, capabilities (drop ALL), runAsNonRoot and seccompProfile.
Not modelled: the `warn` and `audit` modes, `enforce-version` pinning, exemptions, the other
baseline checks (sysctls, AppArmor, SELinux, /proc mount), restricted's volume types and
runAsUser=0.
"""

from __future__ import annotations

from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.resources import NAMESPACES
from tests.kubeapi.store import Store

LABEL = "pod-security.kubernetes.io/enforce"


def _containers(pod: Obj) -> list[Obj]:
    spec = pod["spec"]
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _named(names: list[str]) -> str:
    quoted = ", ".join(f'"{n}"' for n in names)
    return f"container{'s' if len(names) > 1 else ''} {quoted}"


def _must(names: list[str], what: str) -> str:
    return f"{_named(names)} must {what}"


def _baseline(pod: Obj) -> list[str]:
    spec, found = pod["spec"], []
    privileged = [
        c["name"] for c in _containers(pod) if (c.get("securityContext") or {}).get("privileged")
    ]
    if privileged:
        found.append(f"privileged ({_must(privileged, 'not set securityContext.privileged=true')})")
    hosts = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if hosts:
        found.append(f"host namespaces ({', '.join(f'{k}=true' for k in hosts)})")
    paths = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
    if paths:
        found.append(
            f"hostPath volumes (volume{'s' if len(paths) > 1 else ''} "
            f"{', '.join(f'{chr(34)}{p}{chr(34)}' for p in paths)})"
        )
    ports = [
        (c["name"], p["hostPort"])
        for c in _containers(pod)
        for p in c.get("ports") or []
        if p.get("hostPort")
    ]
    if ports:
        names = sorted({n for n, _ in ports})
        found.append(
            f"hostPort ({_named(names)} use{'s' if len(names) == 1 else ''} hostPort "
            f"{', '.join(str(p) for _, p in ports)})"
        )
    return found


def _restricted(pod: Obj) -> list[str]:
    pod_ctx = pod["spec"].get("securityContext") or {}
    found = []
    escalating = [
        c["name"]
        for c in _containers(pod)
        if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False
    ]
    if escalating:
        found.append(
            "allowPrivilegeEscalation != false "
            f"({_must(escalating, 'set securityContext.allowPrivilegeEscalation=false')})"
        )
    no_drop = [
        c["name"]
        for c in _containers(pod)
        if "ALL"
        not in (((c.get("securityContext") or {}).get("capabilities") or {}).get("drop") or [])
    ]
    if no_drop:
        drop = 'set securityContext.capabilities.drop=["ALL"]'
        found.append(f"unrestricted capabilities ({_must(no_drop, drop)})")
    root = [
        c["name"]
        for c in _containers(pod)
        if (c.get("securityContext") or {}).get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        is not True
    ]
    if root:
        found.append(
            f"runAsNonRoot != true (pod or {_must(root, 'set securityContext.runAsNonRoot=true')})"
        )
    seccomp = [
        c["name"]
        for c in _containers(pod)
        if (
            (c.get("securityContext") or {}).get("seccompProfile")
            or pod_ctx.get("seccompProfile")
            or {}
        ).get("type")
        not in ("RuntimeDefault", "Localhost")
    ]
    if seccomp:
        found.append(
            "seccompProfile (pod or "
            + _must(
                seccomp,
                'set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
            )
            + ")"
        )
    return found


def admit(store: Store, pod: Obj) -> None:
    """Raise 403 Forbidden as the PodSecurity admission plugin does in `enforce` mode."""
    namespace = store.find(NAMESPACES, "", pod["metadata"]["namespace"])
    level = ((namespace or {}).get("metadata", {}).get("labels") or {}).get(LABEL, "privileged")
    if level not in ("baseline", "restricted"):
        return
    found = _baseline(pod) + (_restricted(pod) if level == "restricted" else [])
    if found:
        name = pod["metadata"].get("name", "")
        raise ApiError(
            403,
            "Forbidden",
            f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": '
            + ", ".join(found),
            {"name": name, "kind": "pods"},
        )
