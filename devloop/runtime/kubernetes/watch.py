"""One background watch on the project's pods, fanned out to whoever needs to know (replay,
logs).

A watch that breaks off or goes silent (a connection dropped without a word: the server ends
each watch every WATCH_SECONDS, so READ_TIMEOUT without a byte means the connection is dead)
resumes from the last resourceVersion it saw; only a version the server no longer has (410
Gone) costs a new list."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping

import urllib3

from devloop.errors import DevloopError
from devloop.runtime.kubernetes.rest import Obj, Rest, lines, selector

# (previous, current): None before a pod appears / after it goes
Listener = Callable[[Obj | None, Obj | None], None]
WATCH_SECONDS = 5  # the server ends each watch this often, so a stop is noticed promptly
READ_TIMEOUT = WATCH_SECONDS + 5.0
RETRY = 1.0


class _BrokeOff(DevloopError):
    """The watch connection failed; `rv` is the last version seen, where to resume."""

    def __init__(self, message: str, rv: str) -> None:
        super().__init__(message)
        self.rv = rv


class PodWatch:
    """Keeps a snapshot of the pods matching `labels` and tells listeners about every change."""

    def __init__(self, rest: Rest, namespace: str, labels: Mapping[str, str]) -> None:
        self._rest = rest
        self.namespace = namespace
        self._selector = selector(labels)
        self._pods: dict[str, Obj] = {}  # uid → latest
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def subscribe(self, listener: Listener, stop: threading.Event) -> None:
        """Call `listener` for every pod already there, then for every change; starts the watch
        once."""
        with self._lock:
            self._listeners.append(listener)
            known = list(self._pods.values())
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(stop,), name="devloop-kube-pods", daemon=True
                )
                self._thread.start()
        for pod in known:
            listener(None, pod)

    def get(self, uid: str) -> Obj | None:
        with self._lock:
            return self._pods.get(uid)

    def _run(self, stop: threading.Event) -> None:
        rv = ""
        while not stop.is_set():
            try:
                rv = rv or self._relist()
                while not stop.is_set() and rv:
                    rv = self._watch(rv, stop)
            except _BrokeOff as exc:
                rv = exc.rv  # resume where it broke off
                stop.wait(RETRY)
            except DevloopError:
                rv = ""
                stop.wait(RETRY)  # the server went away for a moment: list again

    def _relist(self) -> str:
        pods, rv = self._list()
        fresh = {p["metadata"]["uid"]: p for p in pods}
        with self._lock:
            gone = [p for uid, p in self._pods.items() if uid not in fresh]
        for pod in gone:
            self._update(pod, deleted=True)
        for pod in fresh.values():
            self._update(pod, deleted=False)
        return rv

    def _list(self) -> tuple[list[Obj], str]:
        doc = self._rest.get(
            f"/api/v1/namespaces/{self.namespace}/pods", query={"labelSelector": self._selector}
        )
        return list(doc.get("items") or []), str(
            (doc.get("metadata") or {}).get("resourceVersion") or ""
        )

    def _watch(self, rv: str, stop: threading.Event) -> str:
        """Follow changes from `rv` until the server ends the watch; the version to go on from (''
        to relist)."""
        response = self._rest.open(
            f"/api/v1/namespaces/{self.namespace}/pods",
            query={
                "labelSelector": self._selector,
                "watch": True,
                "resourceVersion": rv,
                "timeoutSeconds": WATCH_SECONDS,
                "allowWatchBookmarks": True,
            },
            timeout=(5.0, READ_TIMEOUT),
        )
        try:
            for line in lines(response):
                if stop.is_set():
                    return ""
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    return ""  # e.g. 410 Gone: the version is too old, list again
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    self._update(obj, deleted=event["type"] == "DELETED")
        except urllib3.exceptions.ReadTimeoutError:
            self._rest.forget_connections()  # the pool's idle connections may be dead too
            raise _BrokeOff("the pod watch went silent", rv) from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise _BrokeOff(f"watching pods stopped: {exc}", rv) from None
        except ValueError as exc:
            raise DevloopError(f"watching pods stopped: {exc}") from None
        finally:
            response.release_conn()
        return rv

    def _update(self, pod: Obj, *, deleted: bool) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            old = self._pods.pop(uid, None) if deleted else self._pods.get(uid)
            if not deleted:
                self._pods[uid] = pod
            listeners = list(self._listeners)
        if deleted and old is None:
            return
        for listener in listeners:
            listener(old, None if deleted else pod)
