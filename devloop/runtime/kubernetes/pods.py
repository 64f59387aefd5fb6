"""Reading pods: which belong to a service, which are ready, and the Instance each one is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devloop.model.manifest import LABEL_MANAGED_BY, LABEL_PART_OF, LABEL_SERVICE
from devloop.runtime.base import Instance
from devloop.runtime.kubernetes.rest import Obj, Rest, selector


def project_labels(project: str) -> dict[str, str]:
    return {LABEL_PART_OF: project, LABEL_MANAGED_BY: "devloop"}


def service_of(pod: Obj) -> str | None:
    labels = pod["metadata"].get("labels") or {}
    return str(labels[LABEL_SERVICE]) if LABEL_SERVICE in labels else None


def list_pods(rest: Rest, namespace: str, labels: Mapping[str, str]) -> tuple[list[Obj], str]:
    """Pods matching `labels`, and the list's resourceVersion (to watch from)."""
    doc = rest.get(
        f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": selector(labels)}
    )
    return list(doc.get("items") or []), str(
        (doc.get("metadata") or {}).get("resourceVersion") or ""
    )


def service_pods(rest: Rest, namespace: str, project: str, service: str) -> list[Obj]:
    return list_pods(rest, namespace, {**project_labels(project), LABEL_SERVICE: service})[0]


def is_ready(pod: Obj) -> bool:
    """Running, not terminating, and its Ready condition true."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def first_container(pod: Obj) -> str:
    return str(((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", ""))


def container_status(pod: Obj, container: str) -> dict[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            return dict(cs)
    return {}


def instance(service: str, pod: Obj) -> Instance:
    """The pod's first container; its generation changes when the pod is replaced or the container
    restarts."""
    meta = pod["metadata"]
    container = first_container(pod)
    status = container_status(pod, container)
    spec_image = next(
        (c.get("image") for c in pod["spec"]["containers"] if c.get("name") == container), ""
    )
    return Instance(
        service=service,
        id=f"{meta['namespace']}/{meta['name']}/{container}",
        name=str(meta["name"]),
        image=str(spec_image or status.get("image") or ""),
        generation=f"{meta.get('uid', '')}:{status.get('restartCount', 0)}",
    )


def split_id(instance: Instance) -> tuple[str, str, str]:
    """(namespace, pod, container) of a Kubernetes Instance."""
    namespace, pod, container = instance.id.split("/", 2)
    return namespace, pod, container


def restarts(pod: Obj) -> int:
    return sum(
        int(cs.get("restartCount", 0))
        for cs in (pod.get("status") or {}).get("containerStatuses") or []
    )
