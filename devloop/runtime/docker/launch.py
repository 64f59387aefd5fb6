"""Create and start one Docker container from a ContainerSpec: labels, network aliases, ports,
supervisor."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import docker
import docker.errors
import requests

from devloop.errors import DeployError
from devloop.model.manifest import (
    LABEL_NAME,
    LABEL_SERVICE,
    LABEL_SESSION,
    LABEL_SPEC,
    LABEL_SUPERVISED,
    project_labels,
)
from devloop.runtime import supervisor
from devloop.runtime.docker.podspec import ContainerSpec, entrypoint_and_cmd


@dataclass(frozen=True)
class Image:
    """What deploy needs from a local image: its id and default ENTRYPOINT / CMD."""

    ref: str
    id: str
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None


class Launcher:
    """Turns specs into running containers on one network, with one set of labels."""

    def __init__(
        self, client: docker.DockerClient, project: str, session: str, network: str, *, dev: bool
    ) -> None:
        self._api = client.api
        self._project = project
        self._session = session
        self._network = network
        self._dev = dev
        self._no_shell: set[str] = set()  # image ids that turned out to have no /bin/sh
        self._lock = threading.Lock()

    def image(self, ref: str, service: str) -> Image:
        """The local image `ref`; DeployError when it is not there (devloop never pulls)."""
        try:
            attrs = self._api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            raise DeployError(
                f"service '{service}': image {ref} is not in the local Docker engine (build it "
                f"first)"
            ) from None
        except (docker.errors.APIError, requests.RequestException) as exc:
            raise DeployError(f"inspecting image {ref} failed: {exc}") from exc
        cfg = attrs.get("Config") or {}
        return Image(ref, str(attrs["Id"]), _tuple(cfg.get("Entrypoint")), _tuple(cfg.get("Cmd")))

    def spec_hash(self, spec: ContainerSpec, image: Image) -> str:
        """Changes whenever the container would be made differently (readiness probes excluded)."""
        data = {**asdict(spec), "readiness": None, "image_id": image.id, "dev": self._dev}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ]

    def create(self, spec: ContainerSpec, image: Image, name: str) -> tuple[str, bool]:
        """Create (not start) the container; (id, supervised)."""
        supervised = self._dev and image.id not in self._no_shell
        entry, cmd = entrypoint_and_cmd(spec, image.entrypoint, image.cmd)
        if supervised:
            if not entry + cmd:
                raise DeployError(
                    f"{spec.name}: neither the manifest nor image {image.ref} gives a command to "
                    f"run"
                )
            entry, cmd = supervisor.wrap(entry + cmd)[:4], entry + cmd
        labels = {
            **dict(spec.labels),
            **self._labels(spec, image),
            LABEL_SUPERVISED: "1" if supervised else "0",
        }
        try:
            created = self._api.create_container(
                spec.image,
                name=name,
                hostname=spec.name[:63],
                labels=labels,
                detach=True,
                entrypoint=entry or None,
                command=cmd or None,
                user=spec.user,
                working_dir=spec.working_dir,
                environment=[f"{k}={v}" for k, v in spec.env],
                use_config_proxy=False,
                ports=sorted(
                    {p.container for p in spec.publish}
                    | {p.number for p in spec.ports if p.protocol == "TCP"}
                ),
                host_config=self._host_config(spec),
                networking_config=self._api.create_networking_config(
                    {self._network: self._api.create_endpoint_config(aliases=list(spec.aliases))}
                ),
            )
        except (docker.errors.APIError, requests.RequestException) as exc:
            raise DeployError(
                f"creating container {name} from {spec.image} failed: {_explain(exc)}"
            ) from exc
        return str(created["Id"]), supervised

    def launch(
        self,
        spec: ContainerSpec,
        image: Image,
        name: str,
        before_start: Callable[[], None] | None = None,
        rename_to: str | None = None,
    ) -> str:
        """Create and start the container as `name`; `before_start` runs in between (to free a host
        port), then the container takes the name `rename_to` (freed by `before_start`) before it
        starts: a container that crashes at once cannot be renamed (its sandbox is gone)."""
        while True:
            cid, supervised = self.create(spec, image, name)
            if before_start is not None:
                before_start()
                before_start = None
            if rename_to is not None:
                self.rename(cid, rename_to)
                name, rename_to = rename_to, None
            try:
                self._api.start(cid)
                return cid
            except (docker.errors.APIError, requests.RequestException) as exc:
                self.remove(cid)
                if not (supervised and _no_shell(exc)):
                    raise DeployError(
                        f"starting container {name} ({spec.image}) failed: {_explain(exc)}"
                        + _port_hint(exc, spec),
                        service=spec.service,
                    ) from exc
                # no shell to supervise with: run the command itself (restarts
                # then use Docker's restart API)
                with self._lock:
                    self._no_shell.add(image.id)

    def rename(self, cid: str, name: str) -> None:
        try:
            self._api.rename(cid, name)
        except (docker.errors.APIError, requests.RequestException) as exc:
            self.remove(cid)
            raise DeployError(
                f"renaming the new container {cid[:12]} to {name} failed: {_explain(exc)}"
            ) from exc

    def remove(self, cid: str) -> None:
        try:
            self._api.remove_container(cid, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise DeployError(f"removing container {cid[:12]} failed: {_explain(exc)}") from exc

    def _labels(self, spec: ContainerSpec, image: Image) -> dict[str, str]:
        return {
            **project_labels(self._project),
            LABEL_SERVICE: spec.service,
            LABEL_SESSION: self._session,
            LABEL_SPEC: self.spec_hash(spec, image),
            LABEL_NAME: spec.name,
        }

    def _host_config(self, spec: ContainerSpec) -> Any:
        return self._api.create_host_config(
            port_bindings={p.container: ("127.0.0.1", p.local) for p in spec.publish},
            restart_policy={
                "Name": spec.restart,
                **({"MaximumRetryCount": 0} if spec.restart == "on-failure" else {}),
            },
        )


def _no_shell(exc: Exception) -> bool:
    text = _explain(exc)
    return "/bin/sh" in text and ("no such file" in text or "not found" in text)


def _port_hint(exc: Exception, spec: ContainerSpec) -> str:
    text = _explain(exc)
    if "port is already allocated" not in text and "address already in use" not in text:
        return ""
    ports = ", ".join(str(p.local) for p in spec.publish)
    return (
        f" (host port {ports} of service {spec.service} is taken by another program or "
        f"container: stop it, or change `ports:` in devloop.yaml)"
    )


def _explain(exc: Exception) -> str:
    return str(getattr(exc, "explanation", None) or exc)


def _tuple(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(v) for v in value)


def project_filter(project: str) -> list[str]:
    """Engine label filters (ANDed) that select everything devloop made for `project`."""
    return [f"{k}={v}" for k, v in project_labels(project).items()]
