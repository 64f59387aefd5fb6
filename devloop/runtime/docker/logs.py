"""Follow the output of every container of a session, including ones started or restarted later."""

from __future__ import annotations

import threading
from typing import Any

import docker
import docker.errors
import requests

from devloop.model.events import Emit, Log
from devloop.model.manifest import LABEL_NAME, LABEL_SERVICE, LABEL_SESSION
from devloop.runtime.docker.events import (
    DockerEvent,
    EventHub,
    close_stream,
    engine_time,
    shutdown_stream,
)

BACKLOG = 500  # lines shown of a container that was already running when following began


class LogFollower:
    """One thread per running container; a container that restarts gets a new follower from its
    start."""

    def __init__(
        self,
        client: docker.DockerClient,
        hub: EventHub,
        session: str,
        emit: Emit,
        stop: threading.Event,
    ) -> None:
        self._api = client.api
        self._hub = hub
        self._session = session
        self._emit = emit
        self._stop = stop
        self._lock = threading.Lock()
        self._streams: dict[str, Any] = {}  # container id → open log stream
        self._again: set[str] = (
            set()
        )  # containers that restarted while their old stream was still open
        self._last: dict[str, float] = {}  # container id → just past the last line shown

    def start(self) -> None:
        self._hub.subscribe(self._on_event, self._stop)
        for c in self._api.containers(filters={"label": [f"{LABEL_SESSION}={self._session}"]}):
            self._follow(str(c["Id"]), c.get("Labels") or {})
        threading.Thread(target=self._close_on_stop, name="devloop-logs-stop", daemon=True).start()

    def _on_event(self, event: DockerEvent) -> None:
        if event.get("Action") == "start":
            attrs = (event.get("Actor") or {}).get("Attributes") or {}
            self._follow(str(event["Actor"]["ID"]), attrs)

    def _follow(self, cid: str, labels: dict[str, str]) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            if cid in self._streams:
                self._again.add(cid)
                return
            self._streams[cid] = (
                None  # claimed: a start event racing the initial listing is ignored
            )
        service = labels.get(LABEL_SERVICE, "?")
        name = labels.get(LABEL_NAME, cid[:12])
        threading.Thread(
            target=self._run, args=(cid, service, name), daemon=True, name=f"devloop-logs-{name}"
        ).start()

    def _run(self, cid: str, service: str, name: str) -> None:
        """Follow until the container stops for good; a restart continues after the last line
        shown."""
        while True:
            seen = self._stream(cid, service, name, self._last.get(cid))
            with self._lock:
                if seen is not None:
                    self._last[cid] = seen
                again = cid in self._again
                self._again.discard(cid)
                if self._stop.is_set() or not (again or self._running(cid)):
                    self._streams.pop(cid, None)
                    return
            if seen is None:
                self._stop.wait(0.2)  # an engine may end a follow early: do not spin

    def _stream(self, cid: str, service: str, name: str, since: float | None) -> float | None:
        """Emit lines until the engine ends the stream; the timestamp of the last one (None: none
        came)."""
        last = None
        stream = None
        try:
            kwargs: dict[str, Any] = {"since": since} if since else {"tail": BACKLOG}
            stream = self._api.logs(cid, stream=True, follow=True, timestamps=True, **kwargs)
            with self._lock:
                self._streams[cid] = stream
            if self._stop.is_set():
                stream.close()
            pending = b""
            for chunk in stream:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    last = self._emit_line(service, name, line) or last
        except (docker.errors.APIError, requests.RequestException):
            pass  # the container went away between its start event and this request
        except Exception:
            if not self._stop.is_set():
                raise
        finally:
            close_stream(stream)
        return last

    def _emit_line(self, service: str, name: str, raw: bytes) -> float | None:
        stamp, _, text = raw.partition(b" ")
        self._emit(Log(service, name, text.decode(errors="replace").rstrip("\r")))
        seconds = engine_time(stamp.decode(errors="replace"))
        return (
            None if seconds is None else seconds + 1e-6
        )  # just past this line: following again skips it

    def _running(self, cid: str) -> bool:
        try:
            return bool(self._api.inspect_container(cid)["State"]["Running"])
        except (docker.errors.APIError, requests.RequestException):
            return False

    def _close_on_stop(self) -> None:
        self._stop.wait()
        with self._lock:
            streams = [s for s in self._streams.values() if s is not None]
        for s in streams:
            shutdown_stream(s)  # the reading thread releases it
