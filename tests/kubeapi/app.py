"""KubeApiServer: wires store, controllers, kubelet and HTTP server; runs them in the background."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from pathlib import Path

import yaml
from aiohttp import web

from tests.kubeapi import defaults, meta
from tests.kubeapi.auth import ADMIN_TOKEN, DEFAULT_CLUSTER_ROLES, Auth, cluster_role
from tests.kubeapi.controller import Controllers
from tests.kubeapi.dockerops import Docker
from tests.kubeapi.events import Recorder
from tests.kubeapi.kubelet import Kubelet
from tests.kubeapi.logs import pod_logs
from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.resources import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    NAMESPACES,
    NODES,
    PODS,
    ROLEBINDINGS,
)
from tests.kubeapi.server import Api, Target
from tests.kubeapi.services import ServiceProxies
from tests.kubeapi.settings import Settings
from tests.kubeapi.spdyexec import pod_exec_spdy
from tests.kubeapi.spdyexec import protocol as exec_protocol
from tests.kubeapi.spdyforward import PROTOCOL as PORTFORWARD
from tests.kubeapi.spdyforward import pod_portforward_spdy, tunnelled, upgraded
from tests.kubeapi.store import Store
from tests.kubeapi.stream import pod_exec, pod_portforward, refuse_spdy

# local by its loopback server; a kind-* name would make builds run `kind load`
CONTEXT = "devloop-kubeapi"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KubeApiServer:
    """A Kubernetes API server on 127.0.0.1 whose pods are Docker containers."""

    def __init__(
        self, port: int = 0, settings: Settings | None = None, server_id: str | None = None
    ) -> None:
        self.port = port or free_port()
        self.settings = settings or Settings()
        self.server_id = server_id or secrets.token_hex(2)
        self.store = Store()
        self.docker = Docker(self.server_id)
        self.recorder = Recorder(self.store, self.settings.node_name)
        self.kubelet = Kubelet(self.store, self.docker, self.recorder, self.settings)
        self.controllers = Controllers(self.store, self.docker, self.recorder)
        self.auth = Auth(self.store)
        # Services that map port -> targetPort through a proxy (off: the name is the pods')
        self.services = ServiceProxies(self.store, self.docker)
        self.controllers.services = self.services
        self.kubelet.services = self.services
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._api: Api | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._seed()
        self.kubelet.start()
        self.controllers.start()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="kubeapi http", daemon=True
        )
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError(f"kubeapi did not start listening on {self.url}")

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def start() -> None:
            self._api = Api(self)
            self._runner = web.AppRunner(
                self._api.app(), handler_cancellation=True, access_log=None
            )
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        """Stop serving and remove every container and network this server made."""
        if self._loop is not None and self._runner is not None and self._api is not None:
            api, runner, loop = self._api, self._runner, self._loop

            async def shutdown() -> None:
                api.closing.set()
                await runner.cleanup()
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
        self.controllers.stop()
        self.services.stop()
        self.kubelet.stop()
        self.docker.cleanup()

    def _seed(self) -> None:
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            ns: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            defaults.prepare(NAMESPACES, ns, None)
            self.store.create(NAMESPACES, ns)
        self.store.create(NODES, self._node())
        for name, rules in DEFAULT_CLUSTER_ROLES.items():
            self.store.create(CLUSTERROLES, cluster_role(name, rules))
        admins: Obj = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "cluster-admin"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}
            ],
        }
        self.store.create(CLUSTERROLEBINDINGS, admins)

    def grant(
        self, namespace: str, user: str, role: str = "edit", kind: str = "ClusterRole"
    ) -> None:
        """Bind `role` (a ClusterRole such as edit/view/admin, or a Role) to `user` in
        `namespace`, creating the namespace if needed (as a cluster admin would)."""
        with self.store.lock:
            if self.store.find(NAMESPACES, "", namespace) is None:
                ns: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
                defaults.prepare(NAMESPACES, ns, None)
                self.store.create(NAMESPACES, ns)
            binding: Obj = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"{user}-{role}".lower(), "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            }
            if self.store.find(ROLEBINDINGS, namespace, binding["metadata"]["name"]) is None:
                self.store.create(ROLEBINDINGS, binding)

    def _node(self) -> Obj:
        name = self.settings.node_name
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": meta.now(),
            "lastTransitionTime": meta.now(),
        }
        capacity = {"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": self.settings.labels()},
            "spec": {"podCIDR": "10.244.0.0/24"},
            "status": {
                "conditions": [ready],
                "capacity": capacity,
                "allocatable": capacity,
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": name},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.31.0",
                    "containerRuntimeVersion": "docker://",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "osImage": "devloop test node",
                },
            },
        }

    async def pod_subresource(self, request: web.Request, t: Target) -> web.StreamResponse:
        """pods/NAME/log, /exec, /portforward."""
        if t.rt is not PODS or t.name is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        pod = self.store.get(PODS, t.namespace or "", t.name)
        if t.sub == "portforward" and (tunnelled(request) or upgraded(request, PORTFORWARD)):
            return await pod_portforward_spdy(self, request, pod)
        if t.sub == "exec" and (chosen := exec_protocol(request)) is not None:
            return await pod_exec_spdy(self, request, pod, chosen)
        if t.sub in ("exec", "portforward"):
            refuse_spdy(request, t.sub)
        if t.sub == "log":
            return await pod_logs(self, request, pod)
        if t.sub == "exec":
            return await pod_exec(self, request, pod)
        return await pod_portforward(self, request, pod)

    def write_kubeconfig(
        self,
        path: Path,
        context: str = CONTEXT,
        namespace: str = "default",
        token: str = ADMIN_TOKEN,
        server: str | None = None,
    ) -> Path:
        """A kubeconfig for this server (or `server`, e.g. a fault front); `token` picks the
        identity (default: the cluster admin)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": server or self.url}}],
            "users": [{"name": context, "user": {"token": token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": namespace},
                }
            ],
            "current-context": context,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def hold_terminating(self, name: str) -> None:
        """Mark namespace `name` Terminating now and keep it so until `release_namespace` (as a
        slow finalizer would): writes into it get 403 NamespaceTerminating."""
        self.controllers.held_namespaces.add(name)
        with self.store.lock:
            if self.store.find(NAMESPACES, "", name) is None:
                return

            def terminating(obj: Obj) -> None:
                obj["metadata"].setdefault("deletionTimestamp", meta.now())
                obj["status"] = {"phase": "Terminating"}

            self.store.mutate(NAMESPACES, "", name, terminating)

    def release_namespace(self, name: str) -> None:
        """Let a held namespace finish terminating (it is then removed)."""
        self.controllers.held_namespaces.discard(name)
        self.controllers._wake.set()

    def delete_namespace(self, name: str, timeout: float = 30.0) -> None:
        """Delete a namespace and wait until it and its pods are gone (test teardown)."""
        self.controllers.held_namespaces.discard(name)
        with self.store.lock:
            if self.store.find(NAMESPACES, "", name) is None:
                return

            def terminating(obj: Obj) -> None:
                obj["metadata"].setdefault("deletionTimestamp", meta.now())
                obj["status"] = {"phase": "Terminating"}

            self.store.mutate(NAMESPACES, "", name, terminating)
        deadline = time.monotonic() + timeout
        while self.store.find(NAMESPACES, "", name) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
