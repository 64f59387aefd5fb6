"""The Docker runtime: rendered Kubernetes manifests run as labelled containers on one network per
project."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import docker.errors
import requests

from devloop.build.deliver import ImageTarget, LocalEngine
from devloop.errors import DeployError, RuntimeUnavailable
from devloop.model.events import Crashed, Emit
from devloop.model.manifest import (
    LABEL_NAME,
    LABEL_SERVICE,
    LABEL_SESSION,
    LABEL_SPEC,
    LABEL_SUPERVISED,
    Manifest,
    project_labels,
)
from devloop.model.project import Project
from devloop.runtime import supervisor
from devloop.runtime.base import Instance, Transport
from devloop.runtime.docker.events import DockerEvent, EventHub
from devloop.runtime.docker.launch import Image, Launcher, project_filter
from devloop.runtime.docker.logs import LogFollower
from devloop.runtime.docker.podspec import ContainerSpec, container_specs
from devloop.runtime.docker.probe import Exec
from devloop.runtime.docker.ready import ReadyWaiter
from devloop.runtime.docker.stream import DockerTransport, docker_exec

Summary = dict[str, Any]  # one entry of the engine's container list
WORKERS = 4  # containers created at once: the engine serialises much of it anyway
# A container that stops (`docker kill`, `docker stop`, an OOM kill: the engine's restart policy
# does not bring back a container stopped by hand) is started again after this long, so
# `docker restart` and the engine's own policy act first; doubling to REVIVE_MAX while it
# keeps dying within REVIVE_CALM seconds of its last start, as a kubelet's crash-loop backoff.
REVIVE_MIN = 1.0
REVIVE_MAX = 15.0
REVIVE_CALM = 30.0


class DockerRuntime:
    """The Runtime protocol on the local Docker engine. In dev mode PID 1 is devloop's
    supervisor."""

    name = "docker"
    images: ImageTarget = LocalEngine()

    def __init__(
        self, project: Project, client: docker.DockerClient, session: str, *, dev: bool
    ) -> None:
        _ping(client)
        self.project = project
        self.network = f"devloop-{project.name}"
        self._client = client
        self._api = client.api
        self._session = session
        self._launcher = Launcher(client, project.name, session, self.network, dev=dev)
        self._events = EventHub(client, session)
        self._desired: dict[
            str, tuple[ContainerSpec, Image]
        ] = {}  # stable container name → what runs there
        self._removing: set[str] = (
            set()
        )  # ids devloop removes itself: not for the controller to recreate
        self._removing_lock = threading.Lock()  # deploy workers add to it while deploy holds _lock
        self._lock = threading.RLock()  # one deploy or recreation at a time
        self._closing = False
        self._controlling = False
        self._revived: dict[str, tuple[float, float]] = {}  # name → (last start, last delay)

    # -- deploy ---------------------------------------------------------------------------

    def deploy(self, manifests: Sequence[Manifest], services: Collection[str]) -> None:
        specs = container_specs(self.project, manifests, services)
        images: dict[str, Image] = {}
        for s in specs:
            images[s.image] = images.get(s.image) or self._launcher.image(s.image, s.service)
        with self._lock:
            self._ensure_network()
            current = self._grouped(services)
            self._desired = {n: v for n, v in self._desired.items() if v[0].service not in services}
            self._desired.update({s.name: (s, images[s.image]) for s in specs})
            with ThreadPoolExecutor(WORKERS, thread_name_prefix="devloop-deploy") as pool:
                done = [
                    pool.submit(self._reconcile, s, images[s.image], current.pop(s.name, []))
                    for s in specs
                ]
                errors = [e for e in (f.exception() for f in done) if e is not None]
            for leftovers in current.values():  # workloads no longer rendered
                self._remove(
                    [c for c in leftovers if c["Labels"].get(LABEL_SESSION) == self._session]
                )
        self._control()
        for error in errors:
            raise error

    def _reconcile(self, spec: ContainerSpec, image: Image, existing: list[Summary]) -> None:
        """Keep the container when its spec is unchanged; else start the new one, then remove the
        old."""
        want = self._launcher.spec_hash(spec, image)
        for c in existing:
            if (
                c["Labels"].get(LABEL_SPEC) == want
                and c["Labels"].get(LABEL_SESSION) == self._session
                and f"/{spec.name}" in c["Names"]
                and c["State"] in ("running", "restarting")
            ):
                self._remove([o for o in existing if o is not c])
                return
        if not existing:
            self._launcher.launch(spec, image, spec.name)
            return
        old = list(existing)
        if spec.publish:
            # Only one container can bind a host port: a service's first replica is replaced
            # remove-first (a short gap), the new one made before and named after the removal
            self._launcher.launch(
                spec,
                image,
                f"{spec.name}-{want[:8]}-next",
                before_start=lambda: self._remove(old),
                rename_to=spec.name,
            )
            return
        # all others keep serving, under another name, until their replacement runs
        self._step_aside(spec.name, old, want[:8])
        self._launcher.launch(spec, image, spec.name)
        self._remove(old)

    def _step_aside(self, name: str, old: list[Summary], short: str) -> None:
        """Free `name` for the replacement: rename the container holding it, or remove it when it
        cannot be renamed (restarting in a crash loop: its sandbox is gone, it serves nothing)."""
        for c in old:
            if f"/{name}" not in c["Names"]:
                continue
            try:
                self._api.rename(c["Id"], f"{name}-{short}-old")
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError:
                self._remove([c])

    def _remove(self, containers: list[Summary]) -> None:
        for c in containers:
            with self._removing_lock:
                self._removing.add(str(c["Id"]))
            self._launcher.remove(str(c["Id"]))

    def _grouped(self, services: Collection[str]) -> dict[str, list[Summary]]:
        """This project's containers of `services`, by stable name (any session: the name is the
        identity)."""
        out: dict[str, list[Summary]] = {}
        for c in self._list(*project_filter(self.project.name), all=True):
            if c["Labels"].get(LABEL_SERVICE) in services:
                out.setdefault(c["Labels"].get(LABEL_NAME, ""), []).append(c)
        return out

    def _ensure_network(self) -> None:
        if self._network_exists():
            return
        labels = {**project_labels(self.project.name), LABEL_SESSION: self._session}
        try:
            self._api.create_network(
                self.network, driver="bridge", labels=labels, check_duplicate=True
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # another session made it a moment ago
                raise DeployError(
                    f"creating Docker network {self.network} failed: {exc.explanation or exc}"
                ) from exc

    # -- the controller: like a ReplicaSet, put back what was removed behind devloop's back --

    def _control(self) -> None:
        with self._lock:
            if self._controlling or self._closing:
                return
            self._controlling = True
        self._events.subscribe(self._on_event)

    def _on_event(self, event: DockerEvent) -> None:
        if event.get("Action") == "die":
            self._revive_later(event)
            return
        if event.get("Action") != "destroy":
            return
        cid = str(event["Actor"]["ID"])
        name = (event["Actor"].get("Attributes") or {}).get(LABEL_NAME, "")
        with self._removing_lock:
            if cid in self._removing:
                self._removing.discard(cid)
                return
        with self._lock:
            if (
                self._closing
                or name not in self._desired
                or self._list(f"{LABEL_NAME}={name}", all=True)
            ):
                return
            if (
                not self._network_exists()
            ):  # `devloop delete` removes the network first: a deletion, not a crash
                return
            spec, image = self._desired[name]
            self._launcher.launch(spec, image, spec.name)

    def _revive_later(self, event: DockerEvent) -> None:
        """A container stopped: start it again soon (the events thread must not wait)."""
        cid = str(event["Actor"]["ID"])
        self._schedule_revival(cid, (event["Actor"].get("Attributes") or {}).get(LABEL_NAME, ""))

    def _schedule_revival(self, cid: str, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            last, delay = self._revived.get(name, (0.0, 0.0))
            delay = min(delay * 2, REVIVE_MAX) if now - last < REVIVE_CALM and delay else REVIVE_MIN
            self._revived[name] = (now + delay, delay)
        timer = threading.Timer(delay, self._revive, (cid, name))
        timer.daemon = True
        timer.start()

    def _revive(self, cid: str, name: str) -> None:
        with self._lock:
            if self._closing or name not in self._desired:
                return
            with self._removing_lock:
                if cid in self._removing:
                    return  # devloop removes it (a redeploy, the end of the session)
            spec, _ = self._desired[name]
            try:
                info = self._api.inspect_container(cid)
            except docker.errors.NotFound:
                return  # removed: the destroy event recreates it
            except (docker.errors.APIError, requests.RequestException):
                return
            state = info.get("State") or {}
            if (
                state.get("Running")
                or state.get("Restarting")
                or info.get("Name") != f"/{spec.name}"  # an old container being replaced
                or (info.get("Config") or {}).get("Labels", {}).get(LABEL_SESSION) != self._session
                or spec.restart == "no"
                or (spec.restart == "on-failure" and state.get("ExitCode") == 0)
                or not self._network_exists()  # `devloop delete` is under way
            ):
                return
            try:
                self._api.start(cid)
            except (docker.errors.APIError, requests.RequestException):
                self._schedule_revival(cid, name)  # the host port taken meanwhile: try later

    # -- readiness ------------------------------------------------------------------------

    def wait_ready(
        self, services: Collection[str], timeout: float, cancel: threading.Event | None = None
    ) -> None:
        with self._lock:
            specs = [s for s, _ in self._desired.values() if s.service in services]
        ReadyWaiter(self._api, self._session, self.network, self._runner).wait(
            specs, timeout, cancel
        )

    def _runner(self, cid: str) -> Exec:
        return lambda argv, timeout: docker_exec(self._api, cid, argv, timeout=timeout)

    # -- containers -------------------------------------------------------------------------

    def instances(self, service: str) -> list[Instance]:
        out = []
        for c in self._list(f"{LABEL_SESSION}={self._session}", f"{LABEL_SERVICE}={service}"):
            try:
                started = self._api.inspect_container(c["Id"])["State"]["StartedAt"]
            except docker.errors.NotFound:
                continue
            out.append(
                Instance(
                    service,
                    str(c["Id"]),
                    c["Names"][0].lstrip("/"),
                    str(c["Image"]),
                    f"{c['Id'][:12]}@{started}",
                )
            )
        return sorted(out, key=lambda i: i.name)

    def open_stream(self, instance: Instance, argv: Sequence[str]) -> Transport:
        return DockerTransport(self._api, instance.id, argv)

    def exec(
        self, instance: Instance, argv: Sequence[str], timeout: float = 30.0
    ) -> tuple[int, bytes]:
        return docker_exec(self._api, instance.id, argv, timeout=timeout)

    def restart_process(self, instance: Instance) -> None:
        try:
            labels = self._api.inspect_container(instance.id)["Config"]["Labels"] or {}
            if labels.get(LABEL_SUPERVISED) != "1":
                # no supervisor (production mode, or an image without /bin/sh):
                # restart the container
                self._api.restart(instance.id, timeout=supervisor.GRACE_SECONDS)
                return
        except (docker.errors.APIError, requests.RequestException) as exc:
            raise DeployError(f"restarting {instance.name} failed: {exc}") from exc
        code, out = docker_exec(
            self._api, instance.id, supervisor.restart_argv(), timeout=supervisor.GRACE_SECONDS + 30
        )
        if code != 0:
            raise DeployError(
                f"restarting the process in {instance.name} failed (exit code {code}): "
                f"{out.decode(errors='replace').strip()}"
            )

    def watch_instances(self, on_change: Callable[[str], None], stop: threading.Event) -> None:
        def relay(event: DockerEvent) -> None:
            service = (event["Actor"].get("Attributes") or {}).get(LABEL_SERVICE)
            if service:
                on_change(service)

        self._events.subscribe(relay, stop)

    def watch_crashes(self, emit: Emit, stop: threading.Event) -> None:
        crashes: dict[str, int] = {}  # container name → its unexpected exits (one reader thread)

        def died(event: DockerEvent) -> None:
            if event.get("Action") != "die" or self._closing:
                return
            cid = str(event["Actor"]["ID"])
            with self._removing_lock:
                if cid in self._removing:
                    return  # devloop removes it: a redeploy, the end of the session
            attrs = event["Actor"].get("Attributes") or {}
            service, name = attrs.get(LABEL_SERVICE), str(attrs.get("name", cid[:12]))
            if not service:
                return
            crashes[name] = crashes.get(name, 0) + 1
            code = attrs.get("exitCode")
            emit(
                Crashed(
                    service=service,
                    container=name,
                    exit_code=int(str(code)) if str(code or "").lstrip("-").isdigit() else None,
                    restarts=crashes[name],
                )
            )

        self._events.subscribe(died, stop)

    def follow_logs(self, emit: Emit, stop: threading.Event) -> None:
        LogFollower(self._client, self._events, self._session, emit, stop).start()

    def forward_ports(self, emit: Emit, stop: threading.Event) -> dict[str, list[str]]:
        """Nothing to forward: ports are published by the engine on 127.0.0.1 when containers are
        made."""
        return self.published_urls()

    def published_urls(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        with self._lock:
            for spec, _ in self._desired.values():
                out.setdefault(spec.service, []).extend(
                    f"http://127.0.0.1:{p.local}" for p in spec.publish
                )
        return {s: sorted(urls) for s, urls in out.items() if urls}

    # -- cleanup ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the background threads (controller, watchers, log followers); containers stay."""
        with self._lock:
            self._closing = True
        self._events.close()

    def teardown(self) -> None:
        self.close()
        with self._lock:
            self._remove(self._list(f"{LABEL_SESSION}={self._session}", all=True))
            self._desired.clear()
        self._remove_network_if_unused(self.network)

    def delete_all(self) -> int:
        """Networks first, so a running session's controller sees a deletion and does not
        recreate."""
        self.close()
        labels = project_filter(self.project.name)
        networks = self._api.networks(filters={"label": labels})
        removed = 0
        for net in networks:
            for cid in self._api.inspect_network(net["Id"]).get("Containers") or {}:
                try:
                    self._api.disconnect_container_from_network(cid, net["Id"], force=True)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError:
                    # restarting (a crash loop): listed on the network yet not connected, so it
                    # cannot be disconnected; it goes now, before the network
                    self._remove([{"Id": cid}])
                    removed += 1
            removed += self._remove_network_if_unused(net["Name"])
        with self._lock:
            containers = self._list(*labels, all=True)
            self._remove(containers)
        for net in networks:  # one a container held a moment ago
            removed += self._remove_network_if_unused(net["Name"])
        return removed + len(containers)

    def _remove_network_if_unused(self, name: str) -> bool:
        for net in self._api.networks(names=[name]):
            if net["Name"] != name or self._api.inspect_network(net["Id"]).get("Containers"):
                continue  # another session's containers still use it
            try:
                self._api.remove_network(net["Id"])
                return True
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "active endpoints" not in str(exc):
                    raise DeployError(
                        f"removing Docker network {name} failed: {exc.explanation or exc}"
                    ) from exc
        return False

    def _network_exists(self) -> bool:
        return any(n["Name"] == self.network for n in self._api.networks(names=[self.network]))

    def _list(self, *labels: str, all: bool = False) -> list[Summary]:
        try:
            return list(self._api.containers(all=all, filters={"label": list(labels)}))
        except (docker.errors.APIError, requests.RequestException) as exc:
            raise DeployError(
                f"listing containers labelled {', '.join(labels)} failed: {exc}"
            ) from exc


def _ping(client: docker.DockerClient) -> None:
    try:
        client.ping()
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        raise RuntimeUnavailable(
            f"cannot reach the Docker engine at {client.api.base_url}: {exc}"
        ) from exc
