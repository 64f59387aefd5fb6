"""A rendered Kubernetes object, and the vocabulary devloop labels its objects and containers
with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The built-in templates a service can use instead of its own manifests.
ARCHETYPES = ("web", "worker", "image")

# One label vocabulary, on Kubernetes objects and on the Docker target's containers alike.
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"  # always "devloop"
LABEL_PART_OF = "app.kubernetes.io/part-of"  # the project name
LABEL_SERVICE = "devloop.dev/service"
LABEL_SESSION = "devloop.dev/session"  # the `dev`/`run` session that made it
LABEL_SPEC = "devloop.dev/spec"  # Docker: hash of everything the container was made from
LABEL_NAME = "devloop.dev/name"  # Docker: the stable name; a replacement carries it before rename
LABEL_SUPERVISED = "devloop.dev/supervised"  # Docker: "1" when PID 1 is devloop's supervisor
# A pod template annotation (kubectl rollout restart's way): a new value recreates the pods or
# containers even when nothing else changed
ANNOTATION_RESTARTED = "devloop.dev/restarted-at"
MANAGER = "devloop"

# Namespaces first, then what workloads read, then Services, then the workloads.
KIND_ORDER = (
    "Namespace",
    "CustomResourceDefinition",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Service",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
    "Ingress",
)
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
    }
)
# Kinds whose pod template sits at spec.template.
POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})


def project_labels(project: str) -> dict[str, str]:
    """The labels that select everything devloop made for `project`."""
    return {LABEL_PART_OF: project, LABEL_MANAGED_BY: MANAGER}


@dataclass(frozen=True)
class Manifest:
    """One rendered Kubernetes object and where it came from."""

    obj: dict[str, Any]
    service: str
    template: str
    # image references devloop replaced by the built tag, one `field: old -> new` each
    replaced: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        ns = self.obj["metadata"].get("namespace")
        return str(ns) if ns else None

    def pod_templates(self) -> list[dict[str, Any]]:
        """The pod template(s) inside a workload, or the pod itself."""
        spec = self.obj.get("spec") or {}
        if self.kind in POD_TEMPLATE_KINDS:
            return [spec.get("template") or {}]
        if self.kind == "CronJob":
            return [((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}]
        if self.kind == "Pod":
            return [self.obj]
        return []
