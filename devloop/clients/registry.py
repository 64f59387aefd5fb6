"""The registry HTTP API, just enough to ask whether a tag is there (HEAD manifest, no pull)."""

from __future__ import annotations

import ipaddress
import re

import requests
from docker.auth import INDEX_NAME, split_repo_name
from docker.utils import parse_repository_tag

from devloop.errors import BuildError

_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_REASONS = (
    ("connection refused", "connection refused"),
    ("name or service not known", "unknown host"),
    ("temporary failure in name resolution", "unknown host"),
    ("no such host", "unknown host"),
    ("no route to host", "no route to host"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
)


class RegistryError(BuildError):
    """The registry could not be reached, or refused what was asked."""

    def __init__(self, registry: str, reason: str) -> None:
        super().__init__(f"registry {registry}: {reason}")
        self.registry = registry
        self.reason = reason


def short_reason(text: str) -> str:
    """'connection refused' instead of three lines of urllib3 or daemon wrapping."""
    low = text.lower()
    for needle, reason in _REASONS:
        if needle in low:
            return reason
    return text.strip()


def split_ref(ref: str) -> tuple[str, str, str]:
    """'127.0.0.1:5000/shop/web:abc' → ('127.0.0.1:5000', 'shop/web', 'abc')."""
    repo, tag = parse_repository_tag(ref)
    registry, path = split_repo_name(repo)
    if registry == INDEX_NAME and "/" not in path:
        path = f"library/{path}"
    return registry, path, tag or "latest"


def registry_of(ref: str) -> str:
    return split_ref(ref)[0]


def manifest_digest(ref: str, timeout: float = 10.0) -> str | None:
    """The registry's digest for `ref`, or None when it has no such tag (or will not tell us)."""
    registry, path, tag = split_ref(ref)
    host = "registry-1.docker.io" if registry == INDEX_NAME else registry
    try:
        resp = _head(host, f"/v2/{path}/manifests/{tag}", timeout)
    except requests.RequestException as exc:
        raise RegistryError(registry, short_reason(str(exc))) from None
    if resp.status_code == 200:
        return resp.headers.get("Docker-Content-Digest")
    if resp.status_code in (401, 403, 404):
        # not there, or private: pushing with the daemon's credentials decides
        return None
    raise RegistryError(registry, f"HEAD {resp.url} answered {resp.status_code} {resp.reason}")


def _head(host: str, path: str, timeout: float) -> requests.Response:
    headers = {"Accept": _ACCEPT}
    if is_loopback(host):
        # the daemon treats 127.0.0.0/8 registries as insecure: plain HTTP, like it does
        return _with_token(f"http://{host}{path}", headers, timeout)
    try:
        return _with_token(f"https://{host}{path}", headers, timeout)
    except requests.exceptions.SSLError:
        return _with_token(f"http://{host}{path}", headers, timeout)


def _with_token(url: str, headers: dict[str, str], timeout: float) -> requests.Response:
    """HEAD, and on 401 once more with an anonymous bearer token (public repositories)."""
    resp = requests.head(url, headers=headers, timeout=timeout, allow_redirects=True)
    challenge = resp.headers.get("WWW-Authenticate", "")
    if resp.status_code != 401 or not challenge.lower().startswith("bearer "):
        return resp
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", "")
    if not realm:
        return resp
    token = requests.get(realm, params=params, timeout=timeout)
    if token.status_code != 200:
        return resp
    body = token.json()
    bearer = body.get("token") or body.get("access_token")
    if not bearer:
        return resp
    return requests.head(
        url,
        headers={**headers, "Authorization": f"Bearer {bearer}"},
        timeout=timeout,
        allow_redirects=True,
    )


def is_loopback(host: str) -> bool:
    """A registry on this machine (`localhost:5000`, `127.0.0.1:5000`, `[::1]:5000`)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
