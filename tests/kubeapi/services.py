"""Services as a cluster has them: the name answers on `port` and forwards to `targetPort`.

Off by default (then the service name is an alias of its pods, so any pod port answers and
`port` means nothing: the old behaviour). With `ServiceProxies.enabled`, every Service with a
selector gets a proxy container on the namespace network carrying the service's DNS names; it
forwards each `port` to `targetPort` of `<service>--endpoints`, a Docker alias the selected
pods carry (Docker DNS spreads connections over them). A port the Service does not list is
refused, as a ClusterIP refuses it.

Not modelled: readiness-gated endpoints (every selected pod is an endpoint), sessionAffinity,
NodePort/LoadBalancer reachability from the host, UDP, headless DNS records per pod.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading

import docker.errors

from tests.kubeapi.dockerops import Docker
from tests.kubeapi.meta import Obj
from tests.kubeapi.resources import PODS, SERVICES
from tests.kubeapi.store import Store

log = logging.getLogger(__name__)
IMAGE = "devloop/python:3"
SCRIPT = r"""
import asyncio, sys
upstream = sys.argv[1]
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        try:
            w.write_eof()  # half-close: the other direction may still carry the answer
        except Exception:
            pass
def handler(target):
    async def handle(r, w):
        try:
            ur, uw = await asyncio.open_connection(upstream, target)
        except OSError:
            w.transport.abort()
            return
        await asyncio.gather(pipe(r, uw), pipe(ur, w))
        w.close()
        uw.close()
    return handle
async def main():
    for spec in sys.argv[2:]:
        port, target = spec.split(":")
        await asyncio.start_server(handler(int(target)), "0.0.0.0", int(port))
    print("serving", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def endpoints_alias(service: str) -> str:
    return f"{service}--endpoints"


def dns_names(name: str, namespace: str) -> list[str]:
    return [
        name,
        f"{name}.{namespace}",
        f"{name}.{namespace}.svc",
        f"{name}.{namespace}.svc.cluster.local",
    ]


def _target(port: Obj, pods: list[Obj]) -> int | None:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for pod in pods:  # a named port: the number the selected pods give it
        for c in pod["spec"].get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") == target:
                    return int(p["containerPort"])
    return None


class ServiceProxies:
    """One proxy container per Service with a selector, kept in step with the Service."""

    def __init__(self, store: Store, docker_: Docker) -> None:
        self.store, self.docker = store, docker_
        self.enabled = False
        self._proxies: dict[tuple[str, str], tuple[str, str]] = {}  # (ns, name) -> (hash, id)
        self._lock = threading.Lock()

    def reconcile(self) -> None:
        with self._lock:
            wanted: dict[tuple[str, str], tuple[str, Obj, list[str]]] = {}
            if self.enabled:
                pods = self.store.list(PODS)
                for svc in self.store.list(SERVICES):
                    md, spec = svc["metadata"], svc.get("spec") or {}
                    selector = spec.get("selector") or {}
                    if not selector or "deletionTimestamp" in md:
                        continue
                    ns = md["namespace"]
                    chosen = [
                        p
                        for p in pods
                        if p["metadata"]["namespace"] == ns
                        and all(
                            (p["metadata"].get("labels") or {}).get(k) == v
                            for k, v in selector.items()
                        )
                    ]
                    maps = []
                    for port in spec.get("ports") or []:
                        target = _target(port, chosen)
                        if target is not None and port.get("protocol", "TCP") == "TCP":
                            maps.append(f"{port['port']}:{target}")
                    digest = hashlib.sha256(json.dumps([md["name"], maps]).encode()).hexdigest()[
                        :12
                    ]
                    wanted[(ns, md["name"])] = (digest, svc, maps)
            for key in list(self._proxies):
                if key not in wanted or wanted[key][0] != self._proxies[key][0]:
                    self.docker.remove_container(self._proxies.pop(key)[1])
            for key, (digest, _svc, maps) in wanted.items():
                if key not in self._proxies:
                    try:
                        self._proxies[key] = (digest, self._start(key[0], key[1], maps))
                    except docker.errors.APIError:
                        log.exception("service proxy for %s/%s", *key)

    def _start(self, namespace: str, name: str, maps: list[str]) -> str:
        network = self.docker.network(namespace)
        api = self.docker.api
        networking = api.create_networking_config(
            {network: api.create_endpoint_config(aliases=dns_names(name, namespace))}
        )
        result = api.create_container(
            IMAGE,
            name=self.docker.name(namespace, f"svc-{name}"),
            command=["python3", "-c", SCRIPT, endpoints_alias(name), *maps],
            networking_config=networking,
            host_config=api.create_host_config(network_mode=network),
            labels=self.docker.labels(namespace=namespace, service=name, role="service-proxy"),
        )
        api.start(result["Id"])
        return str(result["Id"])

    def stop(self) -> None:
        with self._lock:
            for _, cid in self._proxies.values():
                with contextlib.suppress(docker.errors.APIError):
                    self.docker.remove_container(cid)
            self._proxies.clear()
