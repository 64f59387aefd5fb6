"""Defaulting and the validation that matters, applied on every write like the real server."""

from __future__ import annotations

import base64
import copy
import ipaddress
import itertools
import re
from collections.abc import Callable
from typing import Any

from tests.kubeapi import meta
from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.resources import ResourceType
from tests.kubeapi.selectors import match_selector

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_cluster_ips = (str(ipaddress.IPv4Address("10.96.0.10") + i) for i in itertools.count(1))
_node_ports = itertools.cycle(range(30000, 32768))


def _name_error(rt: ResourceType, name: str) -> ApiError | None:
    if rt.kind in ("Namespace",):
        pattern, what, limit = _LABEL, "a lowercase RFC 1123 label", 63
    elif rt.kind == "Service":
        pattern, what, limit = _DNS1035, "a DNS-1035 label", 63
    else:
        pattern, what, limit = _SUBDOMAIN, "a lowercase RFC 1123 subdomain", 253
    if pattern.match(name) and len(name) <= limit:
        return None
    message = (
        f'Invalid value: "{name}": {what} must consist of lower case alphanumeric '
        "characters, '-' or '.', and must start and end with an alphanumeric character"
    )
    return meta.invalid(rt.kind, rt.group, name, [("FieldValueInvalid", "metadata.name", message)])


def image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _probe(probe: Obj | None) -> None:
    if not probe:
        return
    for key, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        probe.setdefault(key, value)
    if "httpGet" in probe:
        probe["httpGet"].setdefault("scheme", "HTTP")
        probe["httpGet"].setdefault("path", "/")


def _container(c: Obj) -> None:
    c.setdefault("imagePullPolicy", image_pull_policy(c.get("image", "")))
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for key in ("readinessProbe", "livenessProbe", "startupProbe"):
        _probe(c.get(key))
    for env in c.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if field_ref:
            field_ref.setdefault("apiVersion", "v1")


def pod_spec(spec: Obj) -> None:
    for key, value in (
        ("restartPolicy", "Always"),
        ("dnsPolicy", "ClusterFirst"),
        ("schedulerName", "default-scheduler"),
        ("securityContext", {}),
        ("terminationGracePeriodSeconds", 30),
    ):
        spec.setdefault(key, value)
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        _container(c)


def _pod_spec_errors(spec: Obj, field: str) -> list[tuple[str, str, str]]:
    errors = []
    containers = spec.get("containers") or []
    if not containers:
        errors.append(("FieldValueRequired", f"{field}.containers", "Required value"))
    for i, c in enumerate(containers):
        if not c.get("name"):
            errors.append(("FieldValueRequired", f"{field}.containers[{i}].name", "Required value"))
        if not c.get("image"):
            errors.append(
                ("FieldValueRequired", f"{field}.containers[{i}].image", "Required value")
            )
    return errors


def _pod(obj: Obj, old: Obj | None) -> list[tuple[str, str, str]]:
    pod_spec(obj.setdefault("spec", {}))
    if old is None:
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif _without_images(obj["spec"]) != _without_images(old["spec"]):
        return [
            (
                "FieldValueForbidden",
                "spec",
                "Forbidden: pod updates may not change fields other "
                "than `spec.containers[*].image`, `spec.initContainers[*].image`, "
                "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
                "tolerations) or `spec.terminationGracePeriodSeconds`",
            )
        ]
    return _pod_spec_errors(obj["spec"], "spec")


def _without_images(spec: Obj) -> Obj:
    spec = copy.deepcopy(spec)
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        c.pop("image", None)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        spec.pop(key, None)
    return spec


def _workload(obj: Obj, old: Obj | None) -> list[tuple[str, str, str]]:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    if obj["kind"] == "Deployment":
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
    template = spec.setdefault("template", {})
    pod_spec(template.setdefault("spec", {}))
    template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    errors = _pod_spec_errors(template["spec"], "spec.template.spec")
    selector = spec.get("selector")
    labels = template["metadata"].get("labels") or {}
    if not selector:
        errors.append(("FieldValueRequired", "spec.selector", "Required value"))
    elif not match_selector(selector, labels):
        errors.append(
            (
                "FieldValueInvalid",
                "spec.template.metadata.labels",
                f"Invalid value: {labels!r}: `selector` does not match template `labels`",
            )
        )
    if old is not None and selector and old["spec"].get("selector") != selector:
        errors.append(
            (
                "FieldValueInvalid",
                "spec.selector",
                f"Invalid value: {selector!r}: field is immutable",
            )
        )
    if old is None:
        # as the real server serializes them: ReplicaSet and StatefulSet status `replicas` has
        # no omitempty (the client's models require it); a Deployment's status is all omitempty
        obj["status"] = {"replicas": 0} if obj["kind"] in ("ReplicaSet", "StatefulSet") else {}
    return errors


def _service(obj: Obj, old: Obj | None) -> list[tuple[str, str, str]]:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    if spec.get("clusterIP") != "None":
        previous = (old or {}).get("spec", {}).get("clusterIP")
        spec["clusterIP"] = previous or spec.get("clusterIP") or next(_cluster_ips)
    spec["clusterIPs"] = [spec["clusterIP"]]
    old_ports = {
        (p.get("port"), p.get("protocol", "TCP")): p
        for p in ((old or {}).get("spec") or {}).get("ports") or []
    }
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
            kept = old_ports.get((port.get("port"), port["protocol"]), {}).get("nodePort")
            port["nodePort"] = kept or next(_node_ports)
    if old is None:
        obj["status"] = {"loadBalancer": {}}
    return []


def _namespace(obj: Obj, old: Obj | None) -> list[tuple[str, str, str]]:
    name = obj["metadata"]["name"]
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    if old is None:
        obj["status"] = {"phase": "Active"}
    return []


def _secret(obj: Obj, old: Obj | None) -> list[tuple[str, str, str]]:
    obj.setdefault("type", "Opaque")
    string_data: dict[str, str] = obj.pop("stringData", None) or {}
    data = obj.setdefault("data", {})
    for key, value in string_data.items():
        data[key] = base64.b64encode(value.encode()).decode()
    return []


_BY_KIND: dict[str, Callable[[Obj, Obj | None], list[tuple[str, str, str]]]] = {
    "Pod": _pod,
    "Deployment": _workload,
    "ReplicaSet": _workload,
    "Service": _service,
    "Namespace": _namespace,
    "Secret": _secret,
}


def prepare(rt: ResourceType, obj: Obj, old: Obj | None) -> None:
    """Default `obj` in place and raise 422 Invalid if it cannot be stored."""
    md = obj.setdefault("metadata", {})
    if not md.get("name") and md.get("generateName") and old is None:
        md["name"] = md["generateName"] + meta.random_suffix()
    name = md.get("name") or ""
    if not name:
        raise meta.invalid(
            rt.kind,
            rt.group,
            name,
            [
                (
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )
            ],
        )
    if old is None and (error := _name_error(rt, name)):
        raise error
    for key in ("labels", "annotations"):
        if md.get(key) is None:
            md.pop(key, None)
    if rt.has_status and old is not None:
        obj["status"] = copy.deepcopy(old.get("status", {}))
    errors = _BY_KIND.get(rt.kind, _none)(obj, old)
    if errors:
        raise meta.invalid(rt.kind, rt.group, name, errors)


def _none(obj: Obj, old: Obj | None) -> list[tuple[str, str, str]]:
    return []


def deep_get(obj: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj
