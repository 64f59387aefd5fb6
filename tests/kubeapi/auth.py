"""Bearer-token authentication and the RBAC authorizer (a subset: verbs x resources x names).

Identities: the token in every kubeconfig `write_kubeconfig` writes is `ADMIN_TOKEN`
(group system:masters, allowed everything, as kind's admin). Tests add others with
`Auth.add_user` and grant them Roles/ClusterRoles through real RoleBindings. An unknown
token is 401 Unauthorized; a request without one is, by default, the admin too (lenient
for hand-made HTTP in older tests); `Auth.anonymous_is_admin = False` makes it
`system:anonymous`, which RBAC denies like a real server.

Not modelled: escalation checks on writes of roles and bindings, aggregated ClusterRoles,
impersonation, client certificates, ServiceAccount token issuance.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

from tests.kubeapi import meta
from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.resources import CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES
from tests.kubeapi.store import Store

ADMIN_TOKEN = "devloop-test-token"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()


ADMIN = User("kubernetes-admin", (MASTERS, AUTHENTICATED))
ANONYMOUS = User("system:anonymous", (UNAUTHENTICATED,))


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, as the authorizer sees it (RequestInfo)."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # set for non-resource requests (/version, /api, /openapi/v3, ...)

    @property
    def resource_request(self) -> bool:
        return not self.path

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: User, a: Attributes) -> ApiError:
    if not a.resource_request:
        return ApiError(
            403,
            "Forbidden",
            f'forbidden: User "{user.name}" cannot {a.verb} path "{a.path}"',
            {},
        )
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    subject = meta.resource_ref(a.full_resource, a.group)
    subject = f'{subject} "{a.name}"' if a.name else subject
    details: Obj = {"kind": a.resource} | ({"name": a.name} if a.name else {})
    if a.group:
        details["group"] = a.group
    return ApiError(
        403,
        "Forbidden",
        f'{subject} is forbidden: User "{user.name}" cannot {a.verb} resource '
        f'"{a.full_resource}" in API group "{a.group}" {where}',
        details,
    )


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> Obj:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_VIEW = [
    _rule(
        [""],
        [
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "pods",
            "pods/log",
            "pods/status",
            "replicationcontrollers",
            "serviceaccounts",
            "services",
            "services/status",
            "events",
            "limitranges",
            "resourcequotas",
            "resourcequotas/status",
            "namespaces",
            "namespaces/status",
        ],
        READ,
    ),
    _rule(
        ["apps"],
        [
            "controllerrevisions",
            "daemonsets",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "statefulsets",
            "statefulsets/scale",
        ],
        READ,
    ),
    _rule(["batch"], ["jobs", "cronjobs"], READ),
    _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], READ),
    _rule(["policy"], ["poddisruptionbudgets"], READ),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], READ),
    _rule(["events.k8s.io"], ["events"], READ),
]
_EDIT = [
    *_VIEW,
    _rule([""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], ["create", "get"]),
    _rule(
        [""],
        [
            "pods",
            "configmaps",
            "events",
            "persistentvolumeclaims",
            "replicationcontrollers",
            "secrets",
            "serviceaccounts",
            "services",
        ],
        WRITE,
    ),
    _rule([""], ["secrets"], READ),
    _rule(
        ["apps"],
        [
            "daemonsets",
            "deployments",
            "deployments/rollback",
            "deployments/scale",
            "replicasets",
            "replicasets/scale",
            "statefulsets",
            "statefulsets/scale",
        ],
        WRITE,
    ),
    _rule(["batch"], ["jobs", "cronjobs"], WRITE),
    _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], WRITE),
    _rule(["policy"], ["poddisruptionbudgets"], WRITE),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], WRITE),
]
_ADMIN = [
    *_EDIT,
    _rule(["rbac.authorization.k8s.io"], ["roles", "rolebindings"], READ + WRITE),
    _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
]
# The default ClusterRoles a real cluster bootstraps (the user-facing ones, abridged).
DEFAULT_CLUSTER_ROLES: dict[str, list[Obj]] = {
    "cluster-admin": [_rule(["*"], ["*"], ["*"])],
    "admin": _ADMIN,
    "edit": _EDIT,
    "view": _VIEW,
}


def cluster_role(name: str, rules: list[Obj]) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "rules": rules,
    }


def _matches(values: list[str] | None, wanted: str) -> bool:
    values = values or []
    return "*" in values or wanted in values


def _resource_matches(resources: list[str] | None, a: Attributes) -> bool:
    resources = resources or []
    if "*" in resources or a.full_resource in resources:
        return True
    return bool(a.subresource) and f"*/{a.subresource}" in resources


def rule_allows(rule: Obj, a: Attributes) -> bool:
    if not _matches(rule.get("verbs"), a.verb):
        return False
    if not a.resource_request:
        urls = rule.get("nonResourceURLs") or []
        return any(
            u == "*" or u == a.path or (u.endswith("*") and a.path.startswith(u[:-1])) for u in urls
        )
    if not _matches(rule.get("apiGroups"), a.group) or not _resource_matches(
        rule.get("resources"), a
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def _subject_matches(subject: Obj, user: User) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        return user.name == f"system:serviceaccount:{subject.get('namespace', '')}:{name}"
    return False


@dataclass
class Auth:
    """Tokens -> users, and whether a user may do what a request asks."""

    store: Store
    anonymous_is_admin: bool = True
    tokens: dict[str, User] = field(default_factory=lambda: {ADMIN_TOKEN: ADMIN})
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_user(self, name: str, groups: tuple[str, ...] = (), token: str | None = None) -> str:
        """Register a user; its bearer token (random unless given)."""
        token = token or f"i14s-{secrets.token_hex(12)}"
        with self._lock:
            self.tokens[token] = User(name, (*groups, AUTHENTICATED))
        return token

    def revoke(self, token: str) -> None:
        """From now on the token is rejected with 401 (an expired credential)."""
        with self._lock:
            self.tokens.pop(token, None)

    def authenticate(self, authorization: str | None) -> User:
        if not authorization:
            return ADMIN if self.anonymous_is_admin else ANONYMOUS
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise unauthorized()
        return user

    def allowed(self, user: User, a: Attributes) -> bool:
        if MASTERS in user.groups:
            return True
        if not a.resource_request:
            # system:discovery and system:public-info-viewer, folded in
            public = a.path in ("/healthz", "/livez", "/readyz", "/version")
            return a.verb == "get" and (public or AUTHENTICATED in user.groups)
        if (
            a.group == "authorization.k8s.io"
            and a.resource in ("selfsubjectaccessreviews", "selfsubjectrulesreviews")
            and AUTHENTICATED in user.groups
        ):
            return True  # system:basic-user
        return any(rule_allows(rule, a) for rule in self.rules_for(user, a.namespace))

    def rules_for(self, user: User, namespace: str) -> list[Obj]:
        """Every rule that applies to `user` in `namespace` ("" = cluster-wide only)."""
        rules: list[Obj] = []
        for binding in self.store.list(CLUSTERROLEBINDINGS):
            if any(_subject_matches(s, user) for s in binding.get("subjects") or []):
                rules += self._role_rules(binding["roleRef"], "")
        if namespace:
            for binding in self.store.list(ROLEBINDINGS, namespace):
                if any(_subject_matches(s, user) for s in binding.get("subjects") or []):
                    rules += self._role_rules(binding["roleRef"], namespace)
        return rules

    def _role_rules(self, ref: Obj, namespace: str) -> list[Obj]:
        if ref.get("kind") == "ClusterRole":
            role = self.store.find(CLUSTERROLES, "", ref.get("name", ""))
        else:
            role = self.store.find(ROLES, namespace, ref.get("name", "")) if namespace else None
        return list((role or {}).get("rules") or [])

    def check(self, user: User, a: Attributes) -> None:
        if not self.allowed(user, a):
            raise forbidden(user, a)
