"""Plain JSON calls to the Kubernetes API over the official client's configured transport.

Objects stay dicts, as rendered: devloop applies what the templates say and reads a
few status fields back, so the typed models would only be converted back and forth.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import urllib3
from kubernetes import client as k8s

from devloop.errors import DeployError, DevloopError, RuntimeUnavailable

Obj = dict[str, Any]
Query = Mapping[str, str | int | bool | None]
Timeout = float | tuple[float, float | None]


class KubeApiError(DeployError):
    """The API server answered with an error status."""

    def __init__(self, what: str, status: int, reason: str, message: str) -> None:
        super().__init__(f"{what}: the API server answered {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.api_message = message


class Rest:
    """JSON requests to one API server, authenticated as the kubeconfig says."""

    def __init__(
        self,
        configuration: k8s.Configuration,
        reload: Callable[[], k8s.Configuration] | None = None,
    ) -> None:
        self.configuration = configuration
        self.api = k8s.ApiClient(configuration)
        self._reload = reload  # re-reads the kubeconfig: exec credential plugins refresh tokens
        self._rejected = False  # said once per session

    def refresh_credentials(self) -> bool:
        """After a 401: say so once, re-read the kubeconfig; True when that gave new
        credentials to try."""
        if not self._rejected:
            self._rejected = True
            print(
                f"warning: credentials rejected by the API server (401) at {self.server}; "
                "re-reading the kubeconfig",
                file=sys.stderr,
            )
        if self._reload is None:
            return False
        try:
            fresh = self._reload()
        except DevloopError:  # a broken kubeconfig: keep the old credentials
            return False
        if fresh.api_key == self.configuration.api_key and fresh.cert_file == (
            self.configuration.cert_file
        ):
            return False
        self.configuration = fresh
        self.api = k8s.ApiClient(fresh)
        return True

    @property
    def server(self) -> str:
        return str(self.configuration.host)

    def get(self, path: str, query: Query | None = None, timeout: float = 30.0) -> Obj:
        return self.request("GET", path, query=query, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Obj:
        """`method path` with a JSON (or apply-patch) body; the decoded answer."""
        what = f"{method} {path}"
        response = self._send(method, path, query, body, content_type, timeout)
        if response.status == 401 and self.refresh_credentials():
            response.release_conn()
            response = self._send(method, path, query, body, content_type, timeout)
        _warn(what, response)
        try:
            data = response.data
        finally:
            response.release_conn()
        if response.status == 401:
            raise KubeApiError(
                what, 401, "Unauthorized", "credentials rejected by the API server (401)"
            )
        if response.status >= 400:
            raise _error(what, response.status, response.reason or "", data)
        return json.loads(data) if data else {}

    def text(self, path: str, query: Query | None = None, timeout: float = 30.0) -> str:
        """A GET whose answer is plain text (a pod's log)."""
        response = self.open(path, query, timeout)
        try:
            return bytes(response.data).decode(errors="replace")
        finally:
            response.release_conn()

    def open(
        self, path: str, query: Query | None = None, timeout: Timeout = 30.0
    ) -> urllib3.BaseHTTPResponse:
        """A streaming GET (a watch, a followed log): the caller reads and closes it."""
        response = self._send("GET", path, query, None, "application/json", timeout)
        if response.status == 401 and self.refresh_credentials():
            response.release_conn()
            response = self._send("GET", path, query, None, "application/json", timeout)
        if response.status >= 400:
            data = response.data
            response.release_conn()
            raise _error(f"GET {path}", response.status, response.reason or "", data)
        return response

    def forget_connections(self) -> None:
        """Close the idle pooled connections: after one went silent, the others (opened over the
        same network path) may be dead too, and a request on one would wait out its timeout."""
        pool = getattr(self.api.rest_client, "pool_manager", None)
        if pool is not None:
            pool.clear()

    def fresh_core(self) -> k8s.CoreV1Api:
        """A CoreV1Api on its own ApiClient: `kubernetes.stream` swaps the client's
        `call_api` while it opens a WebSocket, so concurrent opens must not share one."""
        return k8s.CoreV1Api(k8s.ApiClient(self.configuration))

    def _send(
        self,
        method: str,
        path: str,
        query: Query | None,
        body: Any,
        content_type: str,
        timeout: Timeout,
    ) -> urllib3.BaseHTTPResponse:
        params = [(k, _text(v)) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            request = self.api.param_serialize(
                method,
                path,
                query_params=params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            return self.api.call_api(*request, _request_timeout=timeout).response  # type: ignore[no-any-return]
        except (urllib3.exceptions.HTTPError, OSError, k8s.ApiException) as exc:
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                self.forget_connections()
            raise RuntimeUnavailable(
                f"{method} {path}: cannot reach the Kubernetes API server at {self.server}: "
                f"{_reason(exc)}"
            ) from None


def lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The lines of a streaming response as they arrive (a watch event, a log line)."""
    pending = b""
    for chunk in response.stream(4096, decode_content=False):
        pending += chunk
        *done, pending = pending.split(b"\n")
        yield from done
    if pending:
        yield pending


def _warn(what: str, response: urllib3.BaseHTTPResponse) -> None:
    """Print the API server's `Warning:` headers (deprecations, unknown fields, duplicates) as
    kubectl does: once each."""
    for header in response.headers.getlist("Warning") if response.headers else []:
        text = _WARNING.sub("", header).strip().strip('"').replace('\\"', '"')
        if text and text not in _warned:
            _warned.add(text)
            print(f"warning: the API server ({what}): {text}", file=sys.stderr)


_WARNING = re.compile(r"^\d{3} \S+ ")
_warned: set[str] = set()


def selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def names(items: Sequence[Obj]) -> list[str]:
    return [str(o["metadata"]["name"]) for o in items]


def _text(value: str | int | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _error(what: str, status: int, reason: str, data: bytes) -> KubeApiError:
    message = data.decode(errors="replace").strip()
    try:
        doc = json.loads(data)
        message = str(doc.get("message") or message)
        reason = str(doc.get("reason") or reason)
    except ValueError:
        pass
    return KubeApiError(what, status, reason, message[:500])


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)
    return str(inner or exc)
