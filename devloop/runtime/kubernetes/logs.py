"""Follow the log of every container of every pod of the project, one thread per container, across
restarts, and across connections that break off or go silent (resumed from the last line's
timestamp, with `sinceTime`)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import urllib3

from devloop.errors import DevloopError, RuntimeUnavailable
from devloop.model.events import Emit, Log
from devloop.runtime.kubernetes.pods import container_status, service_of
from devloop.runtime.kubernetes.rest import Obj, Rest, lines
from devloop.runtime.kubernetes.watch import PodWatch

POLL = 0.5
READ_TIMEOUT = 15.0  # seconds without a byte before a followed log is reopened where it stopped
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
        query: dict[str, str | int | bool | None] = {
            "container": container,
            "follow": True,
            "timestamps": True,  # where to resume after a stalled connection
        }
        if _created(pod) < self._started - 5:
            query["tailLines"] = TAIL_EXISTING
        seen = -1
        mark: _Mark | None = None  # set while resuming a stream that broke off
        while not self._stop.is_set() and (current := self._pods.get(uid)) is not None:
            restarts = int(container_status(current, container).get("restartCount", 0))
            if mark is None and (restarts == seen or not _started(current, container)):
                self._stop.wait(POLL)  # the same container ended, or the next one has not started
                continue
            seen = restarts
            line = _Line(service, shown, self._emit, mark)
            if mark is not None and mark.stamp != (0, 0):
                query.pop("tailLines", None)
                query["sinceTime"] = mark.since()
            ended = self._stream(name, line, query)
            if ended:
                mark = None
                query.pop("tailLines", None)
                query.pop("sinceTime", None)
            else:
                mark = line.mark
                self._stop.wait(POLL)

    def _stream(self, pod: str, line: _Line, query: dict[str, str | int | bool | None]) -> bool:
        """Follow one container's log; True when it ended, False when the connection broke off or
        went quiet for READ_TIMEOUT (a quiet log and a silently dropped connection look the same:
        resume from the last line either way)."""
        path = f"/api/v1/namespaces/{self._pods.namespace}/pods/{pod}/log"
        try:
            response = self._rest.open(path, query, timeout=(5.0, READ_TIMEOUT))
        except RuntimeUnavailable:
            return False  # no answer: try again while the pod is there
        except DevloopError:
            return True  # the API said no (the container has not started, the pod went)
        try:
            for raw in lines(response):
                if self._stop.is_set():
                    return True
                line(raw.decode(errors="replace").rstrip("\r"))
        except urllib3.exceptions.ReadTimeoutError:
            self._rest.forget_connections()  # the pool's other idle connections may be dead too
            return False
        except (OSError, urllib3.exceptions.HTTPError):
            return False
        finally:
            response.release_conn()
        return True


@dataclass
class _Mark:
    """The last line shown: its timestamp, and how many lines carried that exact timestamp."""

    stamp: tuple[int, int] = (0, 0)  # (seconds, nanoseconds) since the epoch
    same: int = 0

    def since(self) -> str:
        """`sinceTime` for the resumed stream: the second of the last line (the API's precision);
        the lines of that second already shown are skipped by their timestamps."""
        return datetime.fromtimestamp(self.stamp[0], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Line:
    """Emits the lines of one stream without their timestamps; lines a resumed stream repeats
    (older than the mark, or as old and already counted) are skipped."""

    def __init__(self, service: str, shown: str, emit: Emit, resumed: _Mark | None) -> None:
        self._service, self._shown, self._emit = service, shown, emit
        self._skip = resumed
        self.mark = _Mark(resumed.stamp, resumed.same) if resumed else _Mark()

    def __call__(self, text: str) -> None:
        stamp_text, _, rest = text.partition(" ")
        stamp = _stamp(stamp_text)
        if stamp is None:  # no timestamp (a server that ignores the flag): show it whole
            stamp, rest = self.mark.stamp, text
        elif self._skip is not None:
            if stamp < self._skip.stamp:
                return
            if stamp == self._skip.stamp and self._skip.same > 0:
                self._skip = _Mark(self._skip.stamp, self._skip.same - 1)
                return
            self._skip = None
        self.mark = _Mark(stamp, self.mark.same + 1 if stamp == self.mark.stamp else 1)
        self._emit(Log(service=self._service, container=self._shown, line=rest))


def _stamp(text: str) -> tuple[int, int] | None:
    """RFC 3339 with up to nanoseconds (trailing zeros trimmed, as Go writes it) → (s, ns)."""
    if not text.endswith("Z") or "T" not in text:
        return None
    whole, _, fraction = text[:-1].partition(".")
    try:
        seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        nanos = int((fraction + "000000000")[:9]) if fraction else 0
    except ValueError:
        return None
    return int(seconds.timestamp()), nanos


def _started(pod: Obj, container: str) -> bool:
    state = container_status(pod, container).get("state") or {}
    return "running" in state or "terminated" in state


def _created(pod: Obj) -> float:
    stamp = str(pod["metadata"].get("creationTimestamp") or "")
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()
