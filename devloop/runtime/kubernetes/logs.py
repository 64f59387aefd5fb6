"""Follow the log of every container of every pod of the project, one thread per container, across
restarts."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import urllib3

from devloop.errors import DevloopError
from devloop.model.events import Emit, Log
from devloop.runtime.kubernetes.pods import container_status, service_of
from devloop.runtime.kubernetes.rest import Obj, Rest, lines
from devloop.runtime.kubernetes.watch import PodWatch

POLL = 0.5
TAIL_EXISTING = 20  # lines shown of a pod that was already running when devloop started


class LogFollowers:
    """Starts a follower for each new pod container the watch reports; each ends when its pod
    goes."""

    def __init__(self, rest: Rest, pods: PodWatch, emit: Emit, stop: threading.Event) -> None:
        self._rest = rest
        self._pods = pods
        self._emit = emit
        self._stop = stop
        self._started = time.time()
        self._following: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __call__(self, old: Obj | None, new: Obj | None) -> None:
        if new is None or new["metadata"].get("deletionTimestamp") or service_of(new) is None:
            return
        for c in (new.get("spec") or {}).get("containers") or []:
            key = (str(new["metadata"]["uid"]), str(c["name"]))
            with self._lock:
                if key in self._following:
                    continue
                self._following.add(key)
            threading.Thread(
                target=self._follow,
                args=(new, key[1]),
                daemon=True,
                name=f"devloop-log-{new['metadata']['name']}",
            ).start()

    def _follow(self, pod: Obj, container: str) -> None:
        uid, name = pod["metadata"]["uid"], pod["metadata"]["name"]
        service = service_of(pod) or ""
        shown = name if len(pod["spec"]["containers"]) == 1 else f"{name}/{container}"
        query: dict[str, str | int | bool | None] = {"container": container, "follow": True}
        if _created(pod) < self._started - 5:
            query["tailLines"] = TAIL_EXISTING
        seen = -1
        while not self._stop.is_set() and (current := self._pods.get(uid)) is not None:
            restarts = int(container_status(current, container).get("restartCount", 0))
            if restarts == seen or not _started(current, container):
                self._stop.wait(POLL)  # the same container ended, or the next one has not started
                continue
            seen = restarts
            self._stream(name, service, shown, query)
            query.pop("tailLines", None)

    def _stream(
        self, pod: str, service: str, shown: str, query: dict[str, str | int | bool | None]
    ) -> None:
        path = f"/api/v1/namespaces/{self._pods.namespace}/pods/{pod}/log"
        try:
            response = self._rest.open(path, query, timeout=(5.0, None))
        except DevloopError:
            return
        try:
            for raw in lines(response):
                if self._stop.is_set():
                    return
                self._emit(
                    Log(
                        service=service,
                        container=shown,
                        line=raw.decode(errors="replace").rstrip("\r"),
                    )
                )
        except (OSError, urllib3.exceptions.HTTPError):
            pass  # the container or the connection went; the loop decides what next
        finally:
            response.release_conn()


def _started(pod: Obj, container: str) -> bool:
    state = container_status(pod, container).get("state") or {}
    return "running" in state or "terminated" in state


def _created(pod: Obj) -> float:
    stamp = str(pod["metadata"].get("creationTimestamp") or "")
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()
