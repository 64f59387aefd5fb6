"""One background reader of the Docker events of a session, fanned out to subscribers."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
import requests

from devloop.model.manifest import LABEL_SESSION

DockerEvent = dict[str, Any]
Subscriber = Callable[[DockerEvent], None]
ACTIONS = ("start", "die", "destroy")


class EventHub:
    """Reads container start / die / destroy events labelled with the session, calls each
    subscriber.

    A subscriber runs on the reader thread, so it must be quick; it is dropped once its
    stop event is set. The stream is opened before `subscribe` returns, so nothing that
    happens after it can be missed.
    """

    def __init__(self, client: docker.DockerClient, session: str) -> None:
        self._client = client
        self._filters = {
            "label": [f"{LABEL_SESSION}={session}"],
            "type": "container",
            "event": list(ACTIONS),
        }
        self._subs: list[tuple[Subscriber, threading.Event | None]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._stream: Any = None
        self._thread: threading.Thread | None = None

    def subscribe(self, fn: Subscriber, stop: threading.Event | None = None) -> None:
        with self._lock:
            self._subs.append((fn, stop))
            if self._thread is None and not self._closed.is_set():
                self._stream = self._open(None)
                self._thread = threading.Thread(
                    target=self._run, name="devloop-docker-events", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Stop reading; subscribers are not called again."""
        self._closed.set()
        with self._lock:
            stream, thread = self._stream, self._thread
        shutdown_stream(stream)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        with self._lock:
            close_stream(self._stream)  # reopened while closing: close that one too

    def _open(self, since: float | None) -> Any:
        return self._client.events(decode=True, filters=self._filters, since=since)

    def _run(self) -> None:
        last: float | None = None
        while not self._closed.is_set():
            # a stream shut down from another thread can fail in http.client in several ways
            with contextlib.suppress(Exception):
                for event in self._stream:
                    last = event.get("timeNano", 0) / 1e9 or last
                    self._dispatch(event)
                    if self._closed.is_set():
                        return
            # the engine ended the stream (restart, or close()): reopen and catch up from `last`
            if self._closed.wait(0.5):
                return
            with contextlib.suppress(docker.errors.APIError, requests.RequestException):
                stream = self._open(last if last else time.time())
                with self._lock:
                    close_stream(self._stream)
                    self._stream = stream

    def _dispatch(self, event: DockerEvent) -> None:
        with self._lock:
            self._subs = [
                (fn, stop) for fn, stop in self._subs if stop is None or not stop.is_set()
            ]
            subs = list(self._subs)
        for fn, _ in subs:
            # one failing subscriber must not silence the others or the reader
            with contextlib.suppress(Exception):
                fn(event)


def shutdown_stream(stream: Any) -> None:
    """Make a blocked reader of `stream` see its end; safe from another thread."""
    if stream is not None:
        with contextlib.suppress(Exception):  # already closed by the engine or by us
            stream.close()


def close_stream(stream: Any) -> None:
    """Release the socket of a stream nobody reads any more (docker's close() only shuts it
    down)."""
    shutdown_stream(stream)
    response = getattr(stream, "_response", None)
    if response is not None:
        with contextlib.suppress(Exception):
            response.close()


def engine_time(stamp: str) -> float | None:
    """An RFC 3339 time with nanoseconds, as the engine writes it, → Unix seconds (µs precision)."""
    whole, _, frac = stamp.rstrip("Z").partition(".")
    try:
        base = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    return base + float("0." + (frac or "0"))
