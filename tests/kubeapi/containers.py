"""Translating a pod's container spec into a Docker container, and its exit back into status."""

from __future__ import annotations

import base64
import io
import re
import tarfile
from pathlib import Path
from typing import Any

from tests.kubeapi.dockerops import Docker
from tests.kubeapi.meta import Obj
from tests.kubeapi.resources import CONFIGMAPS, SECRETS
from tests.kubeapi.store import Store
from tests.kubeapi.volumes import binds

_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "m": 0.001,
}


class ConfigError(Exception):
    """The container cannot be created from its spec yet (CreateContainerConfigError)."""


def quantity(text: str | int) -> int:
    match = re.fullmatch(r"([0-9.]+(?:e[0-9]+)?)([a-zA-Z]*)", str(text))
    if not match or match.group(2) not in _UNITS:
        raise ConfigError(f"quantities must match the regular expression: {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _key_ref(store: Store, namespace: str, ref: Obj, secret: bool) -> str | None:
    rt, what = (SECRETS, "secret") if secret else (CONFIGMAPS, "configmap")
    source = store.find(rt, namespace, ref.get("name", ""))
    if source is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{what} "{ref.get("name")}" not found')
    data = source.get("data") or {}
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        kind = "Secret" if secret else "ConfigMap"
        raise ConfigError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref.get('name')}")
    value: str = data[ref["key"]]
    return base64.b64decode(value).decode() if secret else value


def _env_from(store: Store, namespace: str, sources: list[Obj]) -> dict[str, str]:
    env: dict[str, str] = {}
    for src in sources:
        for secret, key in ((False, "configMapRef"), (True, "secretRef")):
            ref = src.get(key)
            if not ref:
                continue
            obj = store.find(SECRETS if secret else CONFIGMAPS, namespace, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(
                    f'{"secret" if secret else "configmap"} "{ref.get("name")}" not found'
                )
            for k, v in (obj.get("data") or {}).items():
                env[src.get("prefix", "") + k] = base64.b64decode(v).decode() if secret else v
    return env


def _field_ref(pod: Obj, path: str) -> str:
    value: Any = pod
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def resolve_env(store: Store, pod: Obj, c: Obj) -> list[str]:
    """KEY=value pairs for the container, as the kubelet computes them."""
    namespace = pod["metadata"]["namespace"]
    env = _env_from(store, namespace, c.get("envFrom") or [])
    for item in c.get("env") or []:
        source = item.get("valueFrom")
        if source is None:
            env[item["name"]] = _expand(str(item.get("value", "")), env)
            continue
        value: str | None
        if "configMapKeyRef" in source:
            value = _key_ref(store, namespace, source["configMapKeyRef"], secret=False)
        elif "secretKeyRef" in source:
            value = _key_ref(store, namespace, source["secretKeyRef"], secret=True)
        elif "fieldRef" in source:
            value = _field_ref(pod, source["fieldRef"]["fieldPath"])
        else:
            value = ""
        if value is not None:
            env[item["name"]] = value
    return [f"{k}={v}" for k, v in env.items()]


def _expand(value: str, env: dict[str, str]) -> str:
    """$(VAR) references to earlier variables, as Kubernetes expands them ($$ escapes)."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        value,
    )


def _user(pod: Obj, c: Obj) -> str | None:
    ctx = (pod["spec"].get("securityContext") or {}) | (c.get("securityContext") or {})
    if "runAsUser" not in ctx:
        return None
    return (
        f"{ctx['runAsUser']}:{ctx['runAsGroup']}" if "runAsGroup" in ctx else str(ctx["runAsUser"])
    )


def _check_non_root(docker: Docker, pod: Obj, c: Obj) -> None:
    """runAsNonRoot as the kubelet verifies it against the image's user."""
    ctx = (pod["spec"].get("securityContext") or {}) | (c.get("securityContext") or {})
    if not ctx.get("runAsNonRoot"):
        return
    md = pod["metadata"]
    where = f'(pod: "{md["name"]}_{md["namespace"]}({md["uid"]})", container: {c["name"]})'
    if "runAsUser" in ctx:
        if int(ctx["runAsUser"]) == 0:
            raise ConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    image = docker.image(c["image"]) or {}
    user = str((image.get("Config") or {}).get("User") or "").split(":", 1)[0]
    if user in ("", "0", "root"):
        raise ConfigError(f"container has runAsNonRoot and image will run as root {where}")
    if not user.isdigit():
        raise ConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({user}), cannot "
            f"verify user is non-root {where}"
        )


def create(
    docker: Docker,
    store: Store,
    pod: Obj,
    c: Obj,
    pause_id: str,
    attempt: int,
    volumes: dict[str, Path] | None = None,
) -> str:
    """Create (not start) the Docker container for container `c`; its id."""
    env = resolve_env(store, pod, c)
    _check_non_root(docker, pod, c)
    md = pod["metadata"]
    limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
    host_config = docker.api.create_host_config(
        network_mode=f"container:{pause_id}",
        mem_limit=quantity(limit) if limit else None,
        binds=binds(c, volumes or {}),
        read_only=bool((c.get("securityContext") or {}).get("readOnlyRootFilesystem")),
    )
    # Kubernetes semantics: `command` replaces ENTRYPOINT (and drops the image's CMD),
    # `args` replaces CMD; Docker behaves the same when Entrypoint is given without Cmd.
    result = docker.api.create_container(
        c["image"],
        name=docker.name(md["namespace"], md["name"], c["name"], str(attempt)),
        entrypoint=c.get("command"),
        command=c.get("args"),
        environment=env,
        working_dir=c.get("workingDir"),
        user=_user(pod, c),
        tty=bool(c.get("tty")),
        stdin_open=bool(c.get("stdin")),
        host_config=host_config,
        labels=docker.labels(
            namespace=md["namespace"],
            pod=md["name"],
            uid=md["uid"],
            container=c["name"],
            attempt=str(attempt),
        ),
    )
    return str(result["Id"])


def create_pause(docker: Docker, pod: Obj, image: str, network: str, aliases: list[str]) -> str:
    """The container that owns the pod's network namespace (its IP and service aliases)."""
    md = pod["metadata"]
    networking = docker.api.create_networking_config(
        {network: docker.api.create_endpoint_config(aliases=aliases)}
    )
    result = docker.api.create_container(
        image,
        name=docker.name(md["namespace"], md["name"], "POD"),
        entrypoint=["sleep"],
        command=["2147483647"],
        hostname=md["name"][:63],
        networking_config=networking,
        host_config=docker.api.create_host_config(network_mode=network),
        labels=docker.labels(
            namespace=md["namespace"], pod=md["name"], uid=md["uid"], role="pause"
        ),
    )
    return str(result["Id"])


def termination(docker: Docker, container_id: str, c: Obj) -> Obj:
    """The `terminated` state of a finished container, with its message per the policy."""
    state = docker.api.inspect_container(container_id)["State"]
    code = int(state.get("ExitCode", 0))
    reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")
    terminated: Obj = {
        "exitCode": code,
        "reason": reason,
        "startedAt": _stamp(state.get("StartedAt")),
        "finishedAt": _stamp(state.get("FinishedAt")),
        "containerID": f"docker://{container_id}",
    }
    message = _termination_message(docker, container_id, c, code)
    if message:
        terminated["message"] = message
    return terminated


def _termination_message(docker: Docker, container_id: str, c: Obj, code: int) -> str:
    path = c.get("terminationMessagePath", "/dev/termination-log")
    try:
        stream, _ = docker.api.get_archive(container_id, path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            handle = tar.extractfile(member) if member else None
            text = handle.read(4096).decode(errors="replace") if handle else ""
        if text:
            return text
    except Exception:  # no file written: the usual case
        pass
    if c.get("terminationMessagePolicy") == "FallbackToLogsOnError" and code != 0:
        logs: bytes = docker.api.logs(container_id, tail=80)
        return logs.decode(errors="replace")[-2048:]
    return ""


def _stamp(docker_time: str | None) -> str | None:
    """Docker's nanosecond timestamps as Kubernetes' second-precision ones."""
    if not docker_time or docker_time.startswith("0001-"):
        return None
    return docker_time.split(".")[0].rstrip("Z") + "Z"
