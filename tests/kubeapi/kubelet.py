"""The node agent: one PodWorker per pod, Docker 'die' events routed to them, container lookup."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from tests.kubeapi.dockerops import Docker
from tests.kubeapi.events import Recorder
from tests.kubeapi.images import Images
from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.pods import PodWorker
from tests.kubeapi.podstatus import Run
from tests.kubeapi.resources import CONFIGMAPS, PODS, SECRETS, SERVICES
from tests.kubeapi.settings import Settings
from tests.kubeapi.store import Change, Store

if TYPE_CHECKING:
    from tests.kubeapi.services import ServiceProxies

log = logging.getLogger(__name__)


class Kubelet:
    """Runs the pods bound to the one node this server has."""

    def __init__(
        self, store: Store, docker: Docker, recorder: Recorder, settings: Settings
    ) -> None:
        self.store, self.docker, self.recorder, self.settings = store, docker, recorder, settings
        self.images = Images(docker, settings, recorder)
        self.services: ServiceProxies | None = None
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._workers: dict[str, PodWorker] = {}
        self._containers: dict[str, PodWorker] = {}
        self._wake = threading.Event()
        self._events: Any = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._events = self.docker.api.events(
            decode=True,
            filters={
                "label": f"devloop.kubeapi.server={self.docker.server_id}",
                "type": "container",
                "event": "die",
            },
        )
        self.store.add_listener(self._on_change)
        for target, name in (
            (self._watch_docker, "kubelet docker events"),
            (self._loop, "kubelet"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.wake()
        for worker in workers:
            worker.join(timeout=10)
        if self._events is not None:
            self._events.close()

    def register(self, container_id: str, worker: PodWorker) -> None:
        with self._lock:
            self._containers[container_id] = worker

    def unregister(self, container_id: str) -> None:
        with self._lock:
            self._containers.pop(container_id, None)

    def _on_change(self, change: Change) -> None:
        # Called under the store lock: only flag work, never do it here.
        if change.rt is PODS:
            worker = self._workers.get(change.obj["metadata"]["uid"])
            if worker is not None:
                worker.wake()
            else:
                self._wake.set()
        elif change.rt in (SERVICES, CONFIGMAPS, SECRETS):
            namespace = change.obj["metadata"].get("namespace")
            for worker in list(self._workers.values()):
                if worker.namespace == namespace:
                    worker.wake()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self.stopping.is_set():
                return
            for pod in self.store.list(PODS):
                uid = pod["metadata"]["uid"]
                with self._lock:
                    if uid in self._workers:
                        continue
                    worker = PodWorker(self, pod)
                    self._workers[uid] = worker
                worker.start()
            with self._lock:
                for uid in [u for u, w in self._workers.items() if w.finished.is_set()]:
                    del self._workers[uid]

    def _watch_docker(self) -> None:
        try:
            for event in self._events:
                with self._lock:
                    worker = self._containers.get(event.get("id", ""))
                if worker is not None:
                    worker.container_died(event["id"])
        except Exception:
            if not self.stopping.is_set():
                log.exception("docker event stream ended")

    def worker(self, namespace: str, name: str) -> PodWorker | None:
        with self._lock:
            for worker in self._workers.values():
                if (worker.namespace, worker.pod_name) == (
                    namespace,
                    name,
                ) and not worker.finished.is_set():
                    return worker
        return None

    def container(self, pod: Obj, container: str | None, previous: bool = False) -> tuple[Run, str]:
        """The Docker container behind a pod's container, or the ApiError the kubelet would give."""
        md = pod["metadata"]
        names = [c["name"] for c in pod["spec"]["containers"]]
        inits = [c["name"] for c in pod["spec"].get("initContainers") or []]
        if container is None:
            if len(names) != 1:
                also = f" or one of the init containers: [{' '.join(inits)}]" if inits else ""
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {md['name']}, "
                    f"choose one of: [{' '.join(names)}]{also}",
                )
            container = names[0]
        if container not in names + inits:
            raise ApiError(
                400, "BadRequest", f"container {container} is not valid for pod {md['name']}"
            )
        worker = self.worker(md["namespace"], md["name"])
        run = worker.runs.get(container) if worker else None
        if previous:
            if run is None or run.previous is None:
                raise ApiError(
                    400,
                    "BadRequest",
                    f'previous terminated container "{container}" in pod "{md["name"]}" not found',
                )
            return run, run.previous
        if run is None or run.current is None:
            reason = run.waiting[0] if run else "ContainerCreating"
            raise ApiError(
                400,
                "BadRequest",
                f'container "{container}" in pod "{md["name"]}" is waiting to start: {reason}',
            )
        return run, run.current
