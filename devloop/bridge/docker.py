"""The Docker target of `dev --local`: the relay container in the service's place, and back.

The original containers keep running, moved off the Service's name: they are reconnected to the
project network under `<service>-devloop-original` only (where a personal intercept sends the
requests that are not the developer's), and reconnected with their own aliases on restore: the
same containers, config untouched. What to restore is written on the relay's labels, so the next
run or `devloop delete` repairs what a killed devloop left.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import socket
import tarfile
from dataclasses import dataclass
from importlib import resources
from typing import Any

import docker
import docker.errors
import requests

from devloop.bridge.env import LocalEnv
from devloop.bridge.tunnel import Dial, tcp_dial
from devloop.errors import DeployError
from devloop.model.manifest import LABEL_SERVICE, project_labels

LABEL_RELAY = "devloop.dev/relay"  # the service a relay stands in for
LABEL_RESTORE = "devloop.dev/restore"  # JSON: original container id -> its network aliases
CONTROL_PORT = 7471


def original_alias(service: str) -> str:
    return f"{service}-devloop-original"


@dataclass(frozen=True)
class RelaySpec:
    base: str = "devloop/python:3"
    header: tuple[str, str] | None = None


class DockerRelay:
    """Puts a relay container in `env.service`'s place on `network`; `restore()` undoes it."""

    def __init__(
        self,
        client: docker.DockerClient,
        project: str,
        network: str,
        env: LocalEnv,
        spec: RelaySpec,
    ) -> None:
        self._api = client.api
        self._project = project
        self._network = network
        self._env = env
        self._spec = spec
        self._relay: str | None = None
        self._originals_found: list[str] = []
        self._dial: Dial = _not_started

    @property
    def name(self) -> str:
        return f"{self._project}-{self._env.service}-devloop-relay"

    def start(self) -> None:
        """Run the relay beside the originals (take_over() moves them off the name)."""
        recover(self._api, self._project)
        image = build_image(self._api, self._spec.base)
        originals = self._originals()
        aliases = sorted({a for al in originals.values() for a in al} | self._service_names())
        listen = sorted({p.target for p in self._env.services} | set(self._env.ports))
        cmd = ["python3", "/relay.py", "--control", str(CONTROL_PORT)]
        cmd += [x for p in listen for x in ("--listen", str(p))]
        if self._spec.header:
            cmd += ["--header", "=".join(self._spec.header)]
            cmd += ["--original", original_alias(self._env.service)]
        labels = {
            # the pod's own labels (what a selector matches), not devloop's: the relay is no
            # instance of the service for the dev loop
            **{k: v for k, v in self._env.labels if not k.startswith("devloop.dev/")},
            **project_labels(self._project),
            LABEL_RELAY: self._env.service,
            LABEL_RESTORE: json.dumps(originals, sort_keys=True),
        }
        try:
            created = self._api.create_container(
                image,
                name=self.name,
                command=cmd,
                labels=labels,
                detach=True,
                ports=[CONTROL_PORT],
                host_config=self._api.create_host_config(
                    port_bindings={CONTROL_PORT: ("127.0.0.1", None)}
                ),
                networking_config=self._api.create_networking_config(
                    {self._network: self._api.create_endpoint_config(aliases=aliases)}
                ),
            )
            self._relay = str(created["Id"])
            self._api.start(self._relay)
            self._originals_found = list(originals)
            port = self._api.port(self._relay, CONTROL_PORT)[0]["HostPort"]
        except (docker.errors.APIError, requests.RequestException, IndexError, KeyError) as exc:
            raise DeployError(f"starting the relay for {self._env.service} failed: {exc}") from exc
        self._dial = tcp_dial("127.0.0.1", int(port))

    def dial(self) -> socket.socket:
        return self._dial()

    def release(self, sock: socket.socket) -> None:
        pass

    def connect_peer(self, service: str, port: int) -> socket.socket:
        """The engine's bridge network is routable from its host: dial the container's IP."""
        s = socket.create_connection(peer_address(self._api, self._network, service, port), 10)
        s.settimeout(None)
        return s

    def take_over(self) -> None:
        try:
            for cid in self._originals_found:
                _reconnect(self._api, self._network, cid, [original_alias(self._env.service)])
        except (docker.errors.APIError, requests.RequestException) as exc:
            raise DeployError(f"moving {self._env.service} off its name failed: {exc}") from exc

    def restore(self) -> None:
        recover(self._api, self._project)

    def _originals(self) -> dict[str, list[str]]:
        """Each running container of the service -> the aliases it was given on the network (the
        engine adds its name and short id by itself)."""
        labels = [f"{k}={v}" for k, v in project_labels(self._project).items()]
        wanted = [*labels, f"{LABEL_SERVICE}={self._env.service}"]
        out = {}
        for c in self._api.containers(filters={"label": wanted}):
            attrs = self._api.inspect_container(c["Id"])
            net = (attrs["NetworkSettings"].get("Networks") or {}).get(self._network)
            if net is not None:
                cid, own = str(attrs["Id"]), str(attrs["Name"]).lstrip("/")
                out[cid] = [a for a in net.get("Aliases") or [] if a != own and a != cid[:12]]
        return out

    def _service_names(self) -> set[str]:
        return {p.service for p in self._env.services}


def _not_started() -> socket.socket:
    raise OSError("the relay is not started")


def recover(api: Any, project: str) -> int:
    """Restore the originals every relay of `project` stands for, then remove the relays; how
    many."""
    labels = [f"{k}={v}" for k, v in project_labels(project).items()]
    relays = api.containers(all=True, filters={"label": [*labels, LABEL_RELAY]})
    for relay in relays:
        network = next(iter((relay.get("NetworkSettings") or {}).get("Networks") or {}), None)
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(relay["Id"], force=True)
        restore = json.loads(relay["Labels"].get(LABEL_RESTORE) or "{}")
        for cid, aliases in restore.items():
            if network is not None:
                with contextlib.suppress(docker.errors.NotFound):
                    _reconnect(api, network, cid, aliases)
    return len(relays)


def _reconnect(api: Any, network: str, cid: str, aliases: list[str]) -> None:
    with contextlib.suppress(docker.errors.APIError):
        api.disconnect_container_from_network(cid, network, force=True)
    api.connect_container_to_network(cid, network, aliases=aliases)


def build_image(api: Any, base: str) -> str:
    """The relay image FROM `base`, built once per (base, relay code)."""
    code = resources.files("devloop.bridge").joinpath("relay.py").read_bytes()
    dockerfile = f'FROM {base}\nCOPY relay.py /relay.py\nCMD ["python3", "/relay.py"]\n'.encode()
    digest = hashlib.sha256(dockerfile + code).hexdigest()[:12]
    tag = f"devloop-relay:{digest}"
    with contextlib.suppress(docker.errors.ImageNotFound):
        api.inspect_image(tag)
        return tag
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile), ("relay.py", code)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    try:
        for chunk in api.build(
            fileobj=buf, custom_context=True, tag=tag, rm=True, decode=True, pull=False
        ):
            if "error" in chunk:
                raise DeployError(f"building the relay image FROM {base} failed: {chunk['error']}")
    except (docker.errors.APIError, requests.RequestException) as exc:
        raise DeployError(f"building the relay image FROM {base} failed: {exc}") from exc
    return tag


def peer_address(api: Any, network: str, name: str, port: int) -> tuple[str, int]:
    """Where `name:port` on the project network answers from this machine: the IP of a container
    with that alias (the engine's bridge is routable from its host)."""
    try:
        info = api.inspect_network(network)
    except docker.errors.NotFound:
        raise OSError(f"network {network} is gone") from None
    for cid in info.get("Containers") or {}:
        with contextlib.suppress(docker.errors.NotFound):
            net = api.inspect_container(cid)["NetworkSettings"]["Networks"].get(network) or {}
            if name in (net.get("Aliases") or []) or name in (net.get("DNSNames") or []):
                return str(net["IPAddress"]), port
    raise OSError(f"no container answers to {name} on {network}")
