"""Where each kind of object lives in the API: its URL path and whether it is namespaced."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from devloop.errors import DeployError
from devloop.runtime.kubernetes.rest import KubeApiError, Rest

# The kinds devloop renders most, known without asking the server.
_BUILTIN: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "Service"): ("services", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Pod"): ("pods", True),
    ("v1", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("apps/v1", "DaemonSet"): ("daemonsets", True),
    ("apps/v1", "ReplicaSet"): ("replicasets", True),
    ("batch/v1", "Job"): ("jobs", True),
    ("batch/v1", "CronJob"): ("cronjobs", True),
    ("networking.k8s.io/v1", "Ingress"): ("ingresses", True),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
}

# What prune and delete look for: the namespaced kinds a devloop template renders.
PRUNABLE: tuple[tuple[str, str], ...] = tuple(
    k for k, (_, ns) in _BUILTIN.items() if ns and k[1] != "ReplicaSet"
)


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        where = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{base}{where}/{self.plural}" + (f"/{name}" if name else "")


class Kinds:
    """Resolves (apiVersion, kind), asking the server's discovery for kinds not built in."""

    def __init__(self, rest: Rest) -> None:
        self._rest = rest
        self._found: dict[tuple[str, str], Kind] = {
            k: Kind(k[0], k[1], plural, ns) for k, (plural, ns) in _BUILTIN.items()
        }
        self._lock = threading.Lock()

    def of(self, api_version: str, kind: str) -> Kind:
        with self._lock:
            if (api_version, kind) not in self._found:
                self._discover(api_version)
            found = self._found.get((api_version, kind))
        if found is None:
            raise DeployError(f"the API server does not serve kind {kind} in {api_version}")
        return found

    def _discover(self, api_version: str) -> None:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            doc = self._rest.get(path)
        except KubeApiError as exc:
            if exc.status == 404:
                return
            raise
        for r in doc.get("resources") or []:
            if "/" not in str(r.get("name")):
                key = (api_version, str(r.get("kind")))
                self._found[key] = Kind(
                    api_version, key[1], str(r["name"]), bool(r.get("namespaced"))
                )
