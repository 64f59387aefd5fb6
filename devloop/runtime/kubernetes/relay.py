"""The Kubernetes side of `dev --local`: a relay Deployment in the service's place, and back.

The relay Deployment carries the original pod template's labels (so its Services select it)
and runs the relay's code from the base image (`python3 -c`: no image to build or push). The
original workload is scaled to zero while the intercept lasts and back to its replicas after:
its spec ends as it began. What to restore is written on the relay's annotations, so the next
run (or `devloop delete`) repairs what a killed devloop left. devloop reaches the relay's
control port, and the other services' pods, through the API server's port-forward streams.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from devloop.errors import DeployError
from devloop.model.manifest import LABEL_MANAGED_BY, LABEL_PART_OF, LABEL_SERVICE
from devloop.runtime.kubernetes.pods import is_ready
from devloop.runtime.kubernetes.rest import KubeApiError, Obj, Rest, selector

LABEL_RELAY = "devloop.dev/relay"
ANNOTATION_RESTORE = "devloop.dev/restore"
CONTROL_PORT = 7471
_PLURAL = {"Deployment": "deployments", "StatefulSet": "statefulsets"}


class KubeRelay:
    """Puts a relay Deployment in place of `workload` ("Deployment/api") in `namespace`."""

    def __init__(
        self,
        rest: Rest,
        namespace: str,
        project: str,
        service: str,
        workload: str,
        labels: Mapping[str, str],
        ports: Sequence[int],
        base: str,
        source: str,
        header: tuple[str, str] | None = None,
        services: Sequence[str] = (),
    ) -> None:
        self._rest = rest
        self._ns = namespace
        self._project = project
        self._service = service
        self._kind, self._name = workload.split("/", 1)
        if self._kind not in _PLURAL:
            raise DeployError(
                f"dev --local on Kubernetes replaces a Deployment or StatefulSet; service "
                f"'{service}' runs a {self._kind}"
            )
        self._labels = {k: v for k, v in labels.items() if not k.startswith("devloop.dev/")}
        self._ports = list(ports)
        self._base = base
        self._source = source
        self._header = header
        self._services = list(services)  # the Services selecting the pod
        self._forwards: dict[int, Any] = {}
        self._lock = threading.Lock()

    @property
    def relay_name(self) -> str:
        return f"{self._name}-devloop-relay"[:63]

    def start(self) -> None:
        recover(self._rest, self._ns, self._project)
        original = self._rest.get(_path(self._ns, self._kind, self._name))
        replicas = int((original.get("spec") or {}).get("replicas", 1))
        restore: dict[str, Any] = {"kind": self._kind, "name": self._name, "replicas": replicas}
        if self._header is not None:
            restore["selectors"] = {
                name: self._service_obj(name)["spec"].get("selector") or {}
                for name in self._services
            }
        self._rest.request("POST", _path(self._ns, "Deployment"), body=self._deployment(restore))
        self._wait_ready()

    def take_over(self) -> None:
        """All traffic: scale the original to zero (the relay's pods carry its labels).
        A personal intercept: point the Services at the relay, and reach the original (still
        running) through `<service>-devloop-original`."""
        if self._header is None:
            self._rest.request(
                "PATCH",
                _path(self._ns, self._kind, self._name),
                body={"spec": {"replicas": 0}},
                content_type="application/merge-patch+json",
            )
            self._wait_originals_gone()
            return
        for name in self._services:
            svc = self._service_obj(name)
            old = svc["spec"].get("selector") or {}
            original: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": _original_name(self._service),
                    "namespace": self._ns,
                    "labels": {
                        LABEL_PART_OF: self._project,
                        LABEL_MANAGED_BY: "devloop",
                        LABEL_RELAY: self._service,
                    },
                },
                "spec": {"selector": old, "ports": svc["spec"].get("ports") or []},
            }
            if name == self._services[0]:
                _strip_service(original["spec"])
                self._rest.request("POST", f"/api/v1/namespaces/{self._ns}/services", body=original)
            _set_selector(self._rest, self._ns, name, old, {LABEL_RELAY: self._service})

    def restore(self) -> None:
        with self._lock:
            forwards, self._forwards = list(self._forwards.values()), {}
        for fwd in forwards:
            _close(fwd)
        recover(self._rest, self._ns, self._project)

    def dial(self) -> socket.socket:
        """A stream to the relay's control port (a port-forward to its ready pod)."""
        pods = _ready(self._rest, self._ns, {LABEL_RELAY: self._service})
        if not pods:
            raise OSError("no ready relay pod")
        return self._forward(pods[0], CONTROL_PORT)

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            fwd = self._forwards.pop(id(sock), None)
        if fwd is not None:
            _close(fwd)

    def connect_peer(self, service: str, port: int) -> socket.socket:
        """A stream to `service:port` (a Service of the namespace): its ready pod's target port."""
        try:
            svc = self._rest.get(f"/api/v1/namespaces/{self._ns}/services/{service}")
        except KubeApiError as exc:
            raise OSError(str(exc)) from None
        spec = svc.get("spec") or {}
        target = port
        for p in spec.get("ports") or []:
            if int(p["port"]) == port and str(p.get("targetPort", port)).isdigit():
                target = int(p.get("targetPort", port))
        pods = _ready(self._rest, self._ns, spec.get("selector") or {})
        if not pods:
            raise OSError(f"no ready pod behind Service {service}")
        return self._forward(pods[0], target)

    def _service_obj(self, name: str) -> Obj:
        return self._rest.get(f"/api/v1/namespaces/{self._ns}/services/{name}")

    def _forward(self, pod: str, port: int) -> socket.socket:
        try:
            fwd = portforward(
                self._rest.fresh_core().connect_get_namespaced_pod_portforward,
                pod,
                self._ns,
                ports=str(port),
            )
            sock: socket.socket = fwd.socket(port)
        except (ApiException, ValueError) as exc:
            raise OSError(f"port-forward to {pod}:{port} failed: {exc}") from None
        sock.setblocking(True)
        with self._lock:
            self._forwards[id(sock)] = fwd
        return sock

    def _deployment(self, restore: Mapping[str, Any]) -> Obj:
        meta = {LABEL_PART_OF: self._project, LABEL_MANAGED_BY: "devloop"}
        argv = ["python3", "-c", self._source, "--control", str(CONTROL_PORT)]
        argv += [x for p in self._ports for x in ("--listen", str(p))]
        labels = {**self._labels, **meta, LABEL_RELAY: self._service}
        if self._header is not None:
            # not the original's labels: its Services must not select the relay's pods
            argv += [
                "--header",
                "=".join(self._header),
                "--original",
                _original_name(self._service),
            ]
            labels = {**meta, LABEL_RELAY: self._service}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": self.relay_name,
                "namespace": self._ns,
                "labels": {**meta, LABEL_RELAY: self._service},
                "annotations": {ANNOTATION_RESTORE: json.dumps(restore, sort_keys=True)},
            },
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {LABEL_RELAY: self._service}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "relay",
                                "image": self._base,
                                "imagePullPolicy": "IfNotPresent",
                                "command": argv,
                                "ports": [{"containerPort": p} for p in self._ports],
                                "readinessProbe": {
                                    "tcpSocket": {"port": CONTROL_PORT},
                                    "periodSeconds": 1,
                                },
                            }
                        ]
                    },
                },
            },
        }

    def _wait_originals_gone(self, timeout: float = 120.0) -> None:
        """Until the original's pods are gone, they still answer to the Service's name."""
        labels = {LABEL_PART_OF: self._project, LABEL_SERVICE: self._service}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            doc = self._rest.get(
                f"/api/v1/namespaces/{self._ns}/pods", query={"labelSelector": selector(labels)}
            )
            if not doc.get("items"):
                return
            time.sleep(0.25)
        raise DeployError(f"the pods of {self._service} did not stop within {timeout:.0f} s")

    def _wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _ready(self._rest, self._ns, {LABEL_RELAY: self._service}):
                return
            time.sleep(0.25)
        raise DeployError(f"the relay pod for {self._service} was not ready within {timeout:.0f} s")


def recover(rest: Rest, namespace: str, project: str) -> int:
    """Scale back every original a relay of `project` stands for, delete the relays; how many."""
    query = {"labelSelector": f"{LABEL_PART_OF}={project},{LABEL_RELAY}"}
    try:
        relays = rest.get(_path(namespace, "Deployment"), query=query).get("items") or []
    except KubeApiError as exc:
        if exc.status in (403, 404):  # may not list Deployments there: nothing of ours to undo
            return 0
        raise
    for relay in relays:
        meta = relay["metadata"]
        restore = json.loads((meta.get("annotations") or {}).get(ANNOTATION_RESTORE) or "{}")
        for name, selector_ in (restore.get("selectors") or {}).items():
            with contextlib.suppress(KubeApiError):
                _set_selector(
                    rest, namespace, name, {LABEL_RELAY: meta["labels"][LABEL_RELAY]}, selector_
                )
        if restore.get("kind") in _PLURAL:
            with contextlib.suppress(KubeApiError):
                rest.request(
                    "PATCH",
                    _path(namespace, restore["kind"], restore["name"]),
                    body={"spec": {"replicas": int(restore["replicas"])}},
                    content_type="application/merge-patch+json",
                )
        with contextlib.suppress(KubeApiError):
            rest.request(
                "DELETE",
                _path(namespace, "Deployment", meta["name"]),
                body={"propagationPolicy": "Foreground"},
            )
    try:
        services = (
            rest.get(f"/api/v1/namespaces/{namespace}/services", query=query).get("items") or []
        )
    except KubeApiError as exc:
        if exc.status not in (403, 404):
            raise
        services = []
    for svc in services:
        with contextlib.suppress(KubeApiError):
            rest.request(
                "DELETE", f"/api/v1/namespaces/{namespace}/services/{svc['metadata']['name']}"
            )
    return len(relays)


def _close(fwd: Any) -> None:
    """Close a port-forward and its WebSocket (the client's close() alone leaves the socket)."""
    with contextlib.suppress(Exception):
        fwd.close()
    with contextlib.suppress(Exception):
        fwd.websocket.shutdown()


def _original_name(service: str) -> str:
    return f"{service}-devloop-original"[:63]


def _strip_service(spec: dict[str, Any]) -> None:
    """Ports as a new Service takes them (no nodePort of the original's)."""
    spec["ports"] = [{k: v for k, v in p.items() if k != "nodePort"} for p in spec["ports"]]


def _set_selector(
    rest: Rest, namespace: str, name: str, old: Mapping[str, Any], new: Mapping[str, Any]
) -> None:
    """Replace a Service's selector (a merge patch merges maps: old keys are nulled)."""
    body = {**{k: None for k in old if k not in new}, **new}
    rest.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/services/{name}",
        body={"spec": {"selector": body}},
        content_type="application/merge-patch+json",
    )


def _ready(rest: Rest, namespace: str, labels: Mapping[str, str]) -> list[str]:
    doc = rest.get(
        f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": selector(labels)}
    )
    return sorted(p["metadata"]["name"] for p in doc.get("items") or [] if is_ready(p))


def _path(namespace: str, kind: str, name: str | None = None) -> str:
    base = f"/apis/apps/v1/namespaces/{namespace}/{_PLURAL[kind]}"
    return f"{base}/{name}" if name else base
