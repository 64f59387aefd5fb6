"""The resource types this server serves, and the discovery documents that describe them."""

from __future__ import annotations

from dataclasses import dataclass

from tests.kubeapi.meta import Obj

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_VERBS = ("get", "list", "watch")
SERVER_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T07:28:49Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it lives, what it is called, what can be done to it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    has_generation: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


NAMESPACES = ResourceType(
    "",
    "v1",
    "namespaces",
    "Namespace",
    False,
    ("create", "delete", "get", "list", "patch", "update", "watch"),
    ("ns",),
    ("status",),
)
CONFIGMAPS = ResourceType("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",))
SECRETS = ResourceType("", "v1", "secrets", "Secret", True)
SERVICES = ResourceType(
    "",
    "v1",
    "services",
    "Service",
    True,
    ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ("svc",),
    ("status",),
)
SERVICEACCOUNTS = ResourceType(
    "", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",)
)
PODS = ResourceType(
    "",
    "v1",
    "pods",
    "Pod",
    True,
    short_names=("po",),
    subresources=("status", "log", "exec", "portforward"),
    has_generation=True,
)
EVENTS = ResourceType("", "v1", "events", "Event", True, short_names=("ev",))
NODES = ResourceType("", "v1", "nodes", "Node", False, READ_VERBS, ("no",), ("status",))
DEPLOYMENTS = ResourceType(
    "apps",
    "v1",
    "deployments",
    "Deployment",
    True,
    short_names=("deploy",),
    subresources=("status", "scale"),
    has_generation=True,
)
REPLICASETS = ResourceType(
    "apps",
    "v1",
    "replicasets",
    "ReplicaSet",
    True,
    short_names=("rs",),
    subresources=("status", "scale"),
    has_generation=True,
)
RBAC = "rbac.authorization.k8s.io"
ROLES = ResourceType(RBAC, "v1", "roles", "Role", True)
ROLEBINDINGS = ResourceType(RBAC, "v1", "rolebindings", "RoleBinding", True)
CLUSTERROLES = ResourceType(RBAC, "v1", "clusterroles", "ClusterRole", False)
CLUSTERROLEBINDINGS = ResourceType(RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", False)
SELFSUBJECTACCESSREVIEWS = ResourceType(
    "authorization.k8s.io",
    "v1",
    "selfsubjectaccessreviews",
    "SelfSubjectAccessReview",
    False,
    ("create",),
)
RESOURCEQUOTAS = ResourceType(
    "",
    "v1",
    "resourcequotas",
    "ResourceQuota",
    True,
    short_names=("quota",),
    subresources=("status",),
)
# Stored and validated, never acted on (no autoscaler, no eviction, no network policy)
HORIZONTALPODAUTOSCALERS = ResourceType(
    "autoscaling",
    "v2",
    "horizontalpodautoscalers",
    "HorizontalPodAutoscaler",
    True,
    short_names=("hpa",),
    subresources=("status",),
)
PODDISRUPTIONBUDGETS = ResourceType(
    "policy",
    "v1",
    "poddisruptionbudgets",
    "PodDisruptionBudget",
    True,
    short_names=("pdb",),
    subresources=("status",),
)
NETWORKPOLICIES = ResourceType(
    "networking.k8s.io",
    "v1",
    "networkpolicies",
    "NetworkPolicy",
    True,
    short_names=("netpol",),
)

TYPES = (
    NAMESPACES,
    CONFIGMAPS,
    SECRETS,
    SERVICES,
    SERVICEACCOUNTS,
    PODS,
    EVENTS,
    NODES,
    DEPLOYMENTS,
    REPLICASETS,
    ROLES,
    ROLEBINDINGS,
    CLUSTERROLES,
    CLUSTERROLEBINDINGS,
    SELFSUBJECTACCESSREVIEWS,
    RESOURCEQUOTAS,
    HORIZONTALPODAUTOSCALERS,
    PODDISRUPTIONBUDGETS,
    NETWORKPOLICIES,
)
GROUPS = {
    "apps": ("v1",),
    RBAC: ("v1",),
    "authorization.k8s.io": ("v1",),
    "autoscaling": ("v2",),
    "policy": ("v1",),
    "networking.k8s.io": ("v1",),
}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    for rt in TYPES:
        if (rt.group, rt.version, rt.plural) == (group, version, plural):
            return rt
    return None


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    for rt in TYPES:
        if (rt.api_version, rt.kind) == (api_version, kind):
            return rt
    return None


def _entry(rt: ResourceType) -> Obj:
    entry: Obj = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
        "storageVersionHash": rt.kind[:11],
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.group == "apps":
        entry["categories"] = ["all"]
    return entry


def _sub_entry(rt: ResourceType, sub: str) -> Obj:
    kinds = {
        "status": rt.kind,
        "scale": "Scale",
        "log": "Pod",
        "exec": "PodExecOptions",
        "portforward": "PodPortForwardOptions",
    }
    verbs = {
        "status": ["get", "patch", "update"],
        "scale": ["get", "patch", "update"],
        "log": ["get"],
        "exec": ["create", "get"],
        "portforward": ["create", "get"],
    }
    entry: Obj = {
        "name": f"{rt.plural}/{sub}",
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": kinds[sub],
        "verbs": verbs[sub],
    }
    if sub == "scale":
        entry |= {"group": "autoscaling", "version": "v1"}
    return entry


def resource_list(group: str, version: str) -> Obj | None:
    """The APIResourceList for /api/v1 or /apis/GROUP/VERSION (None if not served)."""
    types = [rt for rt in TYPES if (rt.group, rt.version) == (group, version)]
    if not types:
        return None
    resources: list[Obj] = []
    for rt in sorted(types, key=lambda t: t.plural):
        resources.append(_entry(rt))
        resources.extend(_sub_entry(rt, sub) for sub in rt.subresources)
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def api_versions() -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}
        ],
    }


def _group(name: str) -> Obj:
    versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in GROUPS[name]]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> Obj:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in GROUPS]}


def api_group(name: str) -> Obj | None:
    if name not in GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1"} | _group(name)
