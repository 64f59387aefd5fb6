"""Pods holding files a session synced: marked by that session, replaced when another finds them.

Synced files live only in the container; the session that synced them remembers them (for
replay) and removes its objects when it ends. A session that crashed leaves its pods serving
files that no image has, and a new session whose image is unchanged would find those pods
ready and report them so. So the first sync into a pod annotates it with the session, and a
session replaces any pod a different session synced into before it deploys.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

from devloop.errors import DevloopError
from devloop.runtime.kubernetes.rest import Obj, Rest, selector

ANNOTATION = "devloop.dev/synced-by"
GONE_WAIT = 60.0  # how long a replaced bare pod (no controller recreates it) is waited for


class SyncMarks:
    """Marks pods this session syncs into (once each) and replaces those other sessions left."""

    def __init__(self, rest: Rest, session: str) -> None:
        self._rest = rest
        self._session = session
        self._marked: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def mark(self, namespace: str, pod: str) -> None:
        """Before the first batch goes into `pod`: say that this session's files are in it."""
        with self._lock:
            if (namespace, pod) in self._marked:
                return
            self._marked.add((namespace, pod))
        # not allowed to patch pods, or the pod went: only the crash case is affected
        with contextlib.suppress(DevloopError):
            self._rest.request(
                "PATCH",
                f"/api/v1/namespaces/{namespace}/pods/{pod}",
                body={"metadata": {"annotations": {ANNOTATION: self._session}}},
                content_type="application/merge-patch+json",
                timeout=10,
            )

    def replace_stale(self, namespace: str, labels: dict[str, str]) -> list[str]:
        """Delete the pods matching `labels` that another session synced into; their names."""
        try:
            doc = self._rest.get(
                f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": selector(labels)}
            )
        except DevloopError:
            return []
        stale = [p for p in doc.get("items") or [] if self._stale(p)]
        bare = []
        for pod in stale:
            name = str(pod["metadata"]["name"])
            print(
                f"warning: pod {name} holds files synced by an earlier devloop session that did "
                "not end cleanly; replacing it",
                file=sys.stderr,
            )
            try:
                self._rest.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}")
            except DevloopError:
                continue
            if not pod["metadata"].get("ownerReferences"):
                bare.append(name)
        self._wait_gone(namespace, bare)
        return [str(p["metadata"]["name"]) for p in stale]

    def _stale(self, pod: Obj) -> bool:
        meta = pod["metadata"]
        by = (meta.get("annotations") or {}).get(ANNOTATION)
        return bool(by) and by != self._session and not meta.get("deletionTimestamp")

    def _wait_gone(self, namespace: str, names: list[str]) -> None:
        """A bare pod is applied again from the manifests: only once the old one is gone."""
        deadline = time.monotonic() + GONE_WAIT
        for name in names:
            while time.monotonic() < deadline:
                try:
                    self._rest.get(f"/api/v1/namespaces/{namespace}/pods/{name}", timeout=10)
                except DevloopError:
                    break  # 404: gone
                time.sleep(0.25)
