"""HTTP routes: discovery, and get/list/watch/create/update/patch/delete for every resource type."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from tests.kubeapi import (
    apply,
    defaults,
    meta,
    openapi,
    patch,
    podsecurity,
    quota,
    resources,
    table,
    validation,
)
from tests.kubeapi.auth import Attributes, User
from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.resources import NAMESPACES, PODS, SELFSUBJECTACCESSREVIEWS, ResourceType
from tests.kubeapi.selectors import matcher
from tests.kubeapi.store import Store
from tests.kubeapi.watch import watch_guarded

if TYPE_CHECKING:
    from tests.kubeapi.app import KubeApiServer

JSON = "application/json"
WARNINGS = web.RequestKey("warnings", list[str])


@dataclass(frozen=True)
class Target:
    """What a resource URL points at."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    sub: str | None


def parse_target(group: str, version: str, rest: list[str]) -> Target:
    missing = ApiError(404, "NotFound", "the server could not find the requested resource")
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and resources.lookup(group, version, rest[2]):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise missing
    rt = resources.lookup(group, version, rest[0])
    if rt is None or (namespace is not None and not rt.namespaced):
        raise missing
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in rt.subresources:
        raise missing
    return Target(rt, namespace, name, sub)


def attributes(request: web.Request, t: Target) -> Attributes:
    """The RBAC verb and resource of a resource request (as the real RequestInfo works out)."""
    method, named = request.method, t.name is not None
    if t.sub in ("exec", "attach", "portforward"):
        verb = "create"  # also for the WebSocket GET (AuthorizePodWebsocketUpgradeCreatePermission)
    elif method == "GET":
        verb = "get" if named else ("watch" if flag(request.query, "watch") else "list")
    else:
        verb = {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if named else "deletecollection",
        }.get(method, method.lower())
    namespace = t.namespace or ""
    if t.rt is NAMESPACES and named:
        namespace = t.name or ""  # a namespace is its own namespace, to RBAC
    return Attributes(
        verb=verb,
        group=t.rt.group,
        resource=t.rt.plural,
        subresource=t.sub or "",
        namespace=namespace,
        name=t.name or "",
    )


def _validate(request: web.Request, t: Target, body: Obj, apply: bool) -> None:
    """fieldValidation (Strict | Warn, the default | Ignore) and list-map keys; warnings are
    sent as `Warning: 299 - "..."` headers."""
    mode = request.query.get("fieldValidation") or "Warn"
    if mode not in ("Strict", "Warn", "Ignore"):
        raise meta.bad_request(
            f"fieldValidation: Unsupported value: {mode!r}: supported values: "
            '"Ignore", "Strict", "Warn"'
        )
    request.setdefault(WARNINGS, []).extend(validation.check(t.rt, body, mode, apply))


def flag(query: Any, key: str) -> bool:
    return str(query.get(key, "")).lower() in ("true", "1")


def respond(obj: Obj, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(obj).encode(), status=status, content_type=JSON)


def _field_manager(request: web.Request) -> str:
    manager = request.query.get("fieldManager")
    if manager:
        return manager
    return request.headers.get("User-Agent", "unknown").split("/", 1)[0]


class Api:
    """The REST surface over the store; pod logs, exec and port-forward go to the kubelet."""

    def __init__(self, server: KubeApiServer) -> None:
        self.server = server
        self.store: Store = server.store
        self.closing = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors], client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self.route)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except ApiError as exc:
            response = respond(exc.status(), exc.code)
        if not response.prepared:
            for text in request.get(WARNINGS, []):
                escaped = text.replace("\\", "\\\\").replace('"', '\\"')
                response.headers.add("Warning", f'299 - "{escaped}"')
        return response

    async def route(self, request: web.Request) -> web.StreamResponse:
        user = self.server.auth.authenticate(request.headers.get("Authorization"))
        parts = [p for p in request.path.split("/") if p]
        target: Target | None = None
        if len(parts) >= 3 and parts[0] == "api":
            target = parse_target("", parts[1], parts[2:])
        elif len(parts) >= 4 and parts[0] == "apis":
            target = parse_target(parts[1], parts[2], parts[3:])
        if target is None:
            self.server.auth.check(user, Attributes(verb=request.method.lower(), path=request.path))
            found = self._discovery(parts)
            if found is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return found if isinstance(found, web.StreamResponse) else respond(found)
        self.server.auth.check(user, attributes(request, target))
        if target.rt is SELFSUBJECTACCESSREVIEWS:
            return respond(self.access_review(user, await self._body(request)), 201)
        return await self.dispatch(request, target)

    def access_review(self, user: User, body: Obj) -> Obj:
        """SelfSubjectAccessReview: may the caller do what spec.resourceAttributes says?"""
        spec = body.get("spec") or {}
        res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if res:
            a = Attributes(
                verb=res.get("verb", ""),
                group=res.get("group", ""),
                resource=res.get("resource", ""),
                subresource=res.get("subresource", ""),
                namespace=res.get("namespace", ""),
                name=res.get("name", ""),
            )
        elif non:
            a = Attributes(verb=non.get("verb", ""), path=non.get("path", ""))
        else:
            raise meta.invalid(
                "SelfSubjectAccessReview",
                "authorization.k8s.io",
                "",
                [
                    (
                        "FieldValueRequired",
                        "spec.resourceAttributes",
                        "Required value: exactly one of nonResourceAttributes or "
                        "resourceAttributes must be specified",
                    )
                ],
            )
        allowed = self.server.auth.allowed(user, a)
        status: Obj = {"allowed": allowed}
        if allowed:
            status["reason"] = (
                "" if "system:masters" in user.groups else "RBAC: allowed by a role binding"
            )
        return {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }

    def _discovery(self, parts: list[str]) -> Obj | web.StreamResponse | None:
        if parts in (["healthz"], ["livez"], ["readyz"]):
            return web.Response(text="ok")
        if parts == ["version"]:
            return resources.SERVER_VERSION
        if parts[:2] == ["openapi", "v3"]:
            return openapi.lookup(parts) or self._missing()
        if parts == ["api"]:
            return resources.api_versions()
        if parts == ["apis"]:
            return resources.api_group_list()
        if len(parts) == 2 and parts[0] == "api":
            return resources.resource_list("", parts[1]) or self._missing()
        if len(parts) == 2 and parts[0] == "apis":
            return resources.api_group(parts[1]) or self._missing()
        if len(parts) == 3 and parts[0] == "apis":
            return resources.resource_list(parts[1], parts[2]) or self._missing()
        return None

    @staticmethod
    def _missing() -> Obj:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    async def dispatch(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        if t.sub in ("log", "exec", "portforward"):
            return await self.server.pod_subresource(request, t)
        if t.name is None:
            if method == "GET":
                if flag(request.query, "watch"):
                    return await watch_guarded(self, request, t)
                listed = self.list(request, t)
                if table.wants_table(request.headers.get("Accept", "")):
                    return respond(
                        table.table(
                            t.rt.kind, t.rt.api_version, listed["items"], listed["metadata"]
                        )
                    )
                return respond(listed)
            if method == "POST":
                return respond(*self.create(t, await self._body(request), request))
            if method == "DELETE":
                return respond(self.delete_collection(request, t))
        elif t.sub in ("status", "scale"):
            return respond(await self.subresource(request, t))
        elif method == "GET":
            obj = self.store.get(t.rt, t.namespace or "", t.name)
            if table.wants_table(request.headers.get("Accept", "")):
                return respond(table.table(t.rt.kind, t.rt.api_version, [obj]))
            return respond(obj)
        elif method == "PUT":
            return respond(self.replace(t, await self._body(request), request))
        elif method == "PATCH":
            return respond(*self.patch(request, t, await request.read()))
        elif method == "DELETE":
            return respond(self.delete(request, t, await self._optional_body(request)))
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    # -- reading --------------------------------------------------------------------------

    def list(self, request: web.Request, t: Target) -> Obj:
        match = matcher(request.query.get("labelSelector"), request.query.get("fieldSelector"))
        with self.store.lock:
            items = self.store.list(t.rt, t.namespace, match)
            rv = str(self.store.resource_version)
        start = (
            int(base64.b64decode(request.query["continue"]).decode())
            if request.query.get("continue")
            else 0
        )
        limit = int(request.query.get("limit") or 0)
        page = items[start : start + limit] if limit else items[start:]
        md: Obj = {"resourceVersion": rv}
        if limit and start + limit < len(items):
            md["continue"] = base64.b64encode(str(start + limit).encode()).decode()
            md["remainingItemCount"] = len(items) - start - limit
        for item in page:
            item.pop("apiVersion", None)
            item.pop("kind", None)
        return {
            "kind": f"{t.rt.kind}List",
            "apiVersion": t.rt.api_version,
            "metadata": md,
            "items": page,
        }

    # -- writing --------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> Obj:
        raw = await request.read()
        try:
            body = yaml.safe_load(raw) if "yaml" in request.content_type else json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise meta.bad_request(
                f"the body of the request was in an unknown format: {exc}"
            ) from None
        if not isinstance(body, dict):
            raise meta.bad_request("the body of the request must be an object")
        return body

    async def _optional_body(self, request: web.Request) -> Obj:
        return await self._body(request) if request.can_read_body else {}

    def _check_kind(self, t: Target, body: Obj, required: bool = False) -> None:
        """Kind and apiVersion must match the URL; plain writes may leave them out, apply may
        not."""
        if not body.get("kind"):
            if required:
                raise meta.bad_request(f"Object 'Kind' is missing in '{json.dumps(body)[:200]}'")
            body["kind"] = t.rt.kind
        body.setdefault("apiVersion", t.rt.api_version)
        if (body.get("apiVersion"), body.get("kind")) != (t.rt.api_version, t.rt.kind):
            raise meta.bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not "
                f"match the expected API version ({t.rt.api_version}) or kind "
                f"{body.get('kind')} is not {t.rt.kind}"
            )

    def _place(self, t: Target, body: Obj) -> None:
        """Put the URL's namespace into the object; a different one in the body is an error."""
        md = body.setdefault("metadata", {})
        if not t.rt.namespaced:
            md.pop("namespace", None)
            return
        if md.get("namespace") and md["namespace"] != t.namespace:
            raise meta.bad_request(
                "the namespace of the provided object does not match the namespace "
                "sent on the request"
            )
        md["namespace"] = t.namespace

    def _namespace_open(self, t: Target, name: str) -> None:
        if not t.rt.namespaced:
            return
        ns = self.store.find(NAMESPACES, "", t.namespace or "")
        if ns is None:
            raise meta.not_found("namespaces", "", t.namespace or "")
        if "deletionTimestamp" in ns["metadata"]:
            raise ApiError(
                403,
                "Forbidden",
                f'{meta.resource_ref(t.rt.plural, t.rt.group)} "{name}" is forbidden: unable to '
                f"create new content in namespace {t.namespace} because it is being terminated",
                {
                    "name": name,
                    "kind": t.rt.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "field": "metadata.namespace",
                            "message": f"namespace {t.namespace} is being terminated",
                        }
                    ],
                },
            )

    def _commit_create(self, t: Target, body: Obj, manager: str | None, dry: bool) -> Obj:
        body["metadata"].pop("resourceVersion", None)
        defaults.prepare(t.rt, body, None)
        self._namespace_open(t, body["metadata"]["name"])
        if t.rt is PODS:
            podsecurity.admit(self.store, body)
            quota.admit(self.store, body)
        if manager:
            apply.record_update(t.rt, None, body, manager)
        if dry:
            return body
        return self.store.create(t.rt, body)

    def create(self, t: Target, body: Obj, request: web.Request) -> tuple[Obj, int]:
        if t.namespace is None and t.rt.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self._check_kind(t, body)
        _validate(request, t, body, apply=False)
        self._place(t, body)
        with self.store.lock:
            return self._commit_create(
                t, body, _field_manager(request), bool(request.query.get("dryRun"))
            ), 201

    def _commit_update(self, t: Target, live: Obj, new: Obj, manager: str | None, dry: bool) -> Obj:
        defaults.prepare(t.rt, new, live)
        if manager:
            apply.record_update(t.rt, live, new, manager)
        if dry:
            return new
        return self.store.update(t.rt, new)

    def replace(self, t: Target, body: Obj, request: web.Request) -> Obj:
        self._check_kind(t, body)
        _validate(request, t, body, apply=False)
        self._place(t, body)
        if body["metadata"].get("name") != t.name:
            raise meta.bad_request(
                f"the name of the object ({body['metadata'].get('name')}) does not "
                f"match the name on the URL ({t.name})"
            )
        with self.store.lock:
            live = self.store.get(t.rt, t.namespace or "", t.name or "")
            body["metadata"].setdefault("managedFields", live["metadata"].get("managedFields", []))
            return self._commit_update(
                t, live, body, _field_manager(request), bool(request.query.get("dryRun"))
            )

    def patch(self, request: web.Request, t: Target, raw: bytes) -> tuple[Obj, int]:
        kind = request.content_type
        dry = bool(request.query.get("dryRun"))
        if kind == "application/apply-patch+yaml":
            return self._apply(request, t, raw, dry)
        if flag(request.query, "force"):
            raise meta.bad_request("force: Forbidden: may not be specified for non-apply patch")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise meta.bad_request(f"error decoding patch: {exc}") from None
        with self.store.lock:
            live = self.store.get(t.rt, t.namespace or "", t.name or "")
            if kind == "application/json-patch+json":
                result = patch.json_patch(live, body)
            elif kind == "application/merge-patch+json":
                result = patch.merge_patch(live, body)
            elif kind == "application/strategic-merge-patch+json":
                result = patch.strategic_merge(live, body)
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    "include: application/json-patch+json, application/merge-patch+json, "
                    "application/apply-patch+yaml",
                    {},
                )
            self._keep_identity(t, live, result)
            _validate(request, t, result, apply=False)
            return self._commit_update(t, live, result, _field_manager(request), dry), 200

    @staticmethod
    def _keep_identity(t: Target, live: Obj, result: Obj) -> None:
        md = result.setdefault("metadata", {})
        md["name"], result["apiVersion"], result["kind"] = t.name, t.rt.api_version, t.rt.kind
        if t.rt.namespaced:
            md["namespace"] = t.namespace

    def _apply(self, request: web.Request, t: Target, raw: bytes, dry: bool) -> tuple[Obj, int]:
        manager = request.query.get("fieldManager")
        if not manager:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                "Required value: is required for apply patch",
            )
        try:
            body = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise meta.bad_request(f"error decoding YAML: {exc}") from None
        if not isinstance(body, dict):
            raise meta.bad_request("the body of the request must be an object")
        self._check_kind(t, body, required=True)
        self._place(t, body)
        _validate(request, t, body, apply=True)
        if body["metadata"].get("name") != t.name:
            raise meta.bad_request(
                f"the name of the object ({body['metadata'].get('name')}) does not "
                f"match the name on the URL ({t.name})"
            )
        force = flag(request.query, "force")
        with self.store.lock:
            live = self.store.find(t.rt, t.namespace or "", t.name or "")
            result = apply.apply(t.rt, live, body, manager, force)
            if live is None:
                return self._commit_create(t, result, None, dry), 201
            self._keep_identity(t, live, result)
            result["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            return self._commit_update(t, live, result, None, dry), 200

    async def subresource(self, request: web.Request, t: Target) -> Obj:
        name, ns = t.name or "", t.namespace or ""
        if request.method == "GET":
            obj = self.store.get(t.rt, ns, name)
            return scale_of(obj) if t.sub == "scale" else obj
        if request.method not in ("PUT", "PATCH"):
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        raw = await request.read()
        with self.store.lock:
            live = self.store.get(t.rt, ns, name)
            view = scale_of(live) if t.sub == "scale" else live
            if request.method == "PUT":
                changed = json.loads(raw)
            elif request.content_type == "application/json-patch+json":
                changed = patch.json_patch(view, json.loads(raw))
            elif request.content_type == "application/apply-patch+yaml":
                changed = patch.merge_patch(view, yaml.safe_load(raw))
            else:
                changed = patch.strategic_merge(view, json.loads(raw))
            new = copy.deepcopy(live)
            if t.sub == "scale":
                new["spec"]["replicas"] = int(changed["spec"]["replicas"])
            else:
                new["status"] = changed.get("status", {})
            result = self.store.update(t.rt, new, check_rv=False)
            return scale_of(result) if t.sub == "scale" else result

    # -- deleting -------------------------------------------------------------------------

    def delete(self, request: web.Request, t: Target, options: Obj) -> Obj:
        name, ns = t.name or "", t.namespace or ""
        grace_text = request.query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        with self.store.lock:
            obj = self.store.get(t.rt, ns, name)
            if t.rt is NAMESPACES:
                return self._terminate_namespace(obj)
            if t.rt is PODS:
                grace = (
                    int(obj["spec"].get("terminationGracePeriodSeconds", 30))
                    if grace_text is None
                    else int(grace_text)
                )
                if grace > 0 and obj["spec"].get("nodeName"):
                    return self.store.mark_deleted(PODS, ns, name, grace)
            self.store.remove(t.rt, ns, name)
        details = {"name": name, "kind": t.rt.plural, "uid": obj["metadata"]["uid"]}
        return meta.success_status(details | ({"group": t.rt.group} if t.rt.group else {}))

    def _terminate_namespace(self, ns: Obj) -> Obj:
        name = ns["metadata"]["name"]
        if name in ("default", "kube-system", "kube-public"):
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )

        def terminating(obj: Obj) -> None:
            obj["metadata"].setdefault("deletionTimestamp", meta.now())
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            obj["status"] = {"phase": "Terminating"}

        return self.store.mutate(NAMESPACES, "", name, terminating)

    def delete_collection(self, request: web.Request, t: Target) -> Obj:
        listed = self.list(request, t)
        for item in listed["items"]:
            md = item["metadata"]
            try:
                self.delete(request, Target(t.rt, md.get("namespace"), md["name"], None), {})
            except ApiError as exc:
                if exc.code != 404:
                    raise
        return listed


def scale_of(obj: Obj) -> Obj:
    md = obj["metadata"]
    selector = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: md[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in md
        },
        "spec": {"replicas": obj["spec"].get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }
