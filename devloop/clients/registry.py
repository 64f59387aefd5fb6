"""The registry HTTP API, just enough to ask whether a tag is there (HEAD manifest, no pull) and
whether we may log in, with the credentials and TLS rules the Docker daemon uses for the push.

- Credentials come from Docker's own config (`~/.docker/config.json`, `DOCKER_CONFIG`
  honoured: `auths`, `credsStore`, `credHelpers`) through the Docker SDK's `docker.auth`; the
  push is handed the very same auth config, so the check and the push never disagree.
- TLS as the daemon does it: HTTPS, verified against the system store plus
  `/etc/docker/certs.d/<host>/*.crt` (and a client certificate from there); plain HTTP or an
  unverified certificate only for loopback registries and those listed in `registry_insecure`.
  A TLS failure is an error naming the registry and the fix, never a downgrade.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import requests
from docker import auth as docker_auth
from docker.auth import INDEX_NAME, split_repo_name
from docker.utils import config as docker_config
from docker.utils import parse_repository_tag
from requests.adapters import HTTPAdapter
from requests.utils import parse_dict_header

from devloop.errors import BuildError

CERTS_D = Path("/etc/docker/certs.d")
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
# The scheme an insecure registry answered on, per process: a TLS attempt at a plain-HTTP
# registry costs ~200 ms (measured on 127.0.0.1:5000), once per process instead of per check.
# Only for registries where plain HTTP is allowed anyway.
_INSECURE_BASES: dict[str, str] = {}
RATE_LIMIT_TRIES = 4
RATE_LIMIT_WAIT = 1.0  # seconds before the first retry; doubles, or what Retry-After says
RATE_LIMIT_MAX_WAIT = 30.0


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


# --- messages a CI log can act on ------------------------------------------------------------


def not_logged_in(registry: str) -> str:
    return (
        f"not logged in to {registry} (run `docker login {registry}` or set up a credential helper)"
    )


def refused(registry: str, source: str) -> str:
    return (
        f"the credentials for {registry} from {source} were refused (run `docker login "
        f"{registry}` or set up a credential helper)"
    )


def denied(registry: str, repo: str) -> str:
    return f"logged in to {registry}, but not allowed to push to {repo}"


def tls_failed(registry: str, host: str, reason: str) -> str:
    return (
        f"TLS verification failed for {registry}: {reason}; if it uses its own CA, put the CA "
        f"certificate in {CERTS_D / host / 'ca.crt'} (the Docker daemon reads it there too); "
        "if it only speaks plain HTTP, list it under `registry_insecure:` in devloop.yaml and "
        "the daemon's insecure-registries"
    )


# --- credentials -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """What Docker would send to `registry`, and where it came from (for messages and doctor)."""

    registry: str
    auth_config: dict[str, str]  # username/password or identitytoken; empty: anonymous
    source: str

    @property
    def present(self) -> bool:
        return bool(self.auth_config)


def credentials(registry: str) -> Credentials:
    """The credentials Docker has for `registry`: `docker.auth` reads the config the CLI writes,
    runs the `docker-credential-*` helper it names, and falls back to plain `auths`."""
    path = docker_config.find_config_file() or str(
        Path(docker_config.config_path_from_environment() or "~/.docker/config.json")
    )
    try:
        cfg = docker_auth.load_config()
        store = cfg.get_credential_store(registry)
        found = cfg.resolve_authconfig(registry) or {}
    except docker.errors.DockerException as exc:
        raise RegistryError(registry, f"cannot read Docker's credentials: {exc}") from None
    wanted = ("username", "password", "identitytoken", "serveraddress")
    auth_config = {k.lower(): str(v) for k, v in found.items() if k.lower() in wanted and v}
    if not ({"username", "identitytoken"} & auth_config.keys()):
        return Credentials(registry, {}, f"none for {registry} in {path}")
    if store:
        kind = "credHelpers" if registry in cfg.cred_helpers else "credsStore"
        return Credentials(registry, auth_config, f"docker-credential-{store} ({kind} in {path})")
    return Credentials(registry, auth_config, f"auths in {path}")


# --- TLS -------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """A registry on this machine (`localhost:5000`, `127.0.0.1:5000`, `[::1]:5000`)."""
    name = _hostname(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_insecure(host: str, insecure: Iterable[str] = ()) -> bool:
    """Plain HTTP (or an unverified certificate) is allowed for `host`: loopback, or listed
    (`host`, `host:port` or a CIDR holding its address), as in the daemon's insecure-registries."""
    if is_loopback(host):
        return True
    name = _hostname(host)
    for entry in insecure:
        if entry in (host, name):
            return True
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if any(addr in net for addr in _addresses(name)):
            return True
    return False


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _addresses(name: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


class _TLSAdapter(HTTPAdapter):
    """requests with one SSL context: the system store plus the registry's certs.d."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


def ssl_context(host: str) -> tuple[ssl.SSLContext, list[Path]]:
    """The system trust store plus `/etc/docker/certs.d/<host>/`: `*.crt` are CAs, a
    `*.cert` with its `*.key` is the client certificate (the daemon's layout)."""
    context = ssl.create_default_context()
    folder = CERTS_D / host
    loaded: list[Path] = []
    for ca in sorted(folder.glob("*.crt")) if folder.is_dir() else []:
        try:
            context.load_verify_locations(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(host, f"cannot load the CA certificate {ca}: {exc}") from None
        loaded.append(ca)
    for cert in sorted(folder.glob("*.cert")) if folder.is_dir() else []:
        key = cert.with_suffix(".key")
        try:
            context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(host, f"cannot load the client certificate {cert}: {exc}") from None
        loaded.append(cert)
    return context, loaded


# --- the client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ping:
    """What `GET /v2/` showed: where, over what, and whether the credentials were accepted."""

    url: str
    tls: str  # "verified (…)", "unverified (insecure registry)" or "plain HTTP (insecure registry)"
    credentials: Credentials
    login: str  # "accepted", "anonymous access", or the refusal


class Registry:
    """One registry host, reached the way the daemon reaches it, with Docker's credentials."""

    def __init__(self, host: str, insecure: Iterable[str] = (), timeout: float = 10.0) -> None:
        self.name = host
        self.host = "registry-1.docker.io" if host == INDEX_NAME else host
        self.insecure = is_insecure(self.host, insecure)
        self.timeout = timeout
        self.creds = credentials(host)
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "devloop"
        self._cas: list[Path] = []
        if not self.insecure:
            context, self._cas = ssl_context(self.host)
            self._session.mount("https://", _TLSAdapter(context))
        self._base: str | None = None  # the scheme that answered, once known
        self._token: str | None = None

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def manifest_digest(self, repo: str, tag: str) -> str | None:
        """The digest the registry holds for `repo:tag`, or None when it has no such tag (or
        repository: the push creates it)."""
        path = f"/v2/{repo}/manifests/{tag}"
        resp = self._authorized("HEAD", path, f"repository:{repo}:pull,push", repo)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise RegistryError(self.name, f"HEAD {path} answered {_status(resp)}")
        digest = resp.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        # the header is optional: the digest of the manifest's bytes is what a pull by digest
        # checks against
        body = self._authorized("GET", path, f"repository:{repo}:pull,push", repo)
        return f"sha256:{hashlib.sha256(body.content).hexdigest()}"

    def ping(self) -> Ping:
        """`GET /v2/` with the credentials (a token without scope for Bearer realms, like `docker
        login`); raises RegistryError for unreachable, TLS, refused credentials."""
        resp = self._authorized("GET", "/v2/", None, None)
        if resp.status_code != 200:
            raise RegistryError(self.name, f"GET /v2/ answered {_status(resp)}")
        assert self._base is not None
        if self._base.startswith("http://"):
            tls = "plain HTTP (insecure registry)"
        elif self.insecure:
            tls = "certificate not verified (insecure registry)"
        else:
            extra = ", ".join(str(p) for p in self._cas)
            tls = "certificate verified" + (f" (system store + {extra})" if extra else "")
        login = "accepted" if self.creds.present else "anonymous access"
        return Ping(f"{self._base}/v2/", tls, self.creds, login)

    # -- requests with retries, challenges and tokens --

    def _authorized(
        self, method: str, path: str, scope: str | None, repo: str | None
    ) -> requests.Response:
        resp = self._send(method, path, self._auth_header())
        if resp.status_code == 401:
            challenge = resp.headers.get("WWW-Authenticate", "")
            scheme, _, params = challenge.partition(" ")
            if scheme.lower() == "basic" and self.creds.present and not self._token:
                self._token = "basic"
                resp = self._send(method, path, self._auth_header())
            elif scheme.lower() == "bearer":
                self._token = self._bearer(_challenge(params), scope)
                resp = self._send(method, path, self._auth_header())
        if resp.status_code == 401:
            if not self.creds.present:
                raise RegistryError(self.name, not_logged_in(self.name))
            if self._token not in (None, "basic"):  # the realm gave a token: the scope is missing
                raise RegistryError(self.name, denied(self.name, repo or self.name))
            raise RegistryError(self.name, refused(self.name, self.creds.source))
        if resp.status_code == 403:
            if not self.creds.present:
                raise RegistryError(self.name, not_logged_in(self.name))
            raise RegistryError(self.name, denied(self.name, repo or self.name))
        return resp

    def _auth_header(self) -> dict[str, str]:
        if self._token == "basic":
            user = self.creds.auth_config.get("username", "")
            pw = self.creds.auth_config.get("password", "")
            return {"Authorization": requests.auth._basic_auth_str(user, pw)}
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _bearer(self, challenge: dict[str, str | None], scope: str | None) -> str:
        """A token from the challenge's realm: the identity token (OAuth refresh) or the
        username and password (Basic), or anonymous; as the daemon asks for one."""
        realm = challenge.get("realm") or ""
        if not realm:
            raise RegistryError(self.name, "Bearer challenge without a realm")
        params = {k: v for k, v in challenge.items() if k in ("service", "scope") and v}
        if scope:
            params["scope"] = scope
        cfg = self.creds.auth_config
        if "identitytoken" in cfg:
            form = {**params, "grant_type": "refresh_token", "client_id": "devloop"}
            form["refresh_token"] = cfg["identitytoken"]
            resp = self._retry(lambda: self._session.post(realm, data=form, timeout=self.timeout))
        else:
            basic = (cfg["username"], cfg.get("password", "")) if self.creds.present else None
            resp = self._retry(
                lambda: self._session.get(realm, params=params, auth=basic, timeout=self.timeout)
            )
        if resp.status_code in (401, 403):
            if not self.creds.present:
                raise RegistryError(self.name, not_logged_in(self.name))
            raise RegistryError(self.name, refused(self.name, self.creds.source))
        if resp.status_code != 200:
            raise RegistryError(self.name, f"token request to {realm} answered {_status(resp)}")
        try:
            body = resp.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise RegistryError(self.name, f"token request to {realm} gave no token")
        return str(token)

    def _send(self, method: str, path: str, headers: dict[str, str]) -> requests.Response:
        headers = {"Accept": _ACCEPT, **headers}
        if self._base is not None:
            base = self._base
            return self._retry(lambda: self._request(method, base + path, headers))
        if not self.insecure:
            self._base = f"https://{self.host}"
            return self._send(method, path, headers)
        known = _INSECURE_BASES.get(self.host)
        if known:
            self._base = known
            return self._send(method, path, headers)
        # an insecure registry, as the daemon does it: HTTPS without verification, then HTTP
        try:
            resp = self._retry(lambda: self._request(method, f"https://{self.host}{path}", headers))
            self._base = f"https://{self.host}"
        except RegistryError:
            resp = self._retry(lambda: self._request(method, f"http://{self.host}{path}", headers))
            self._base = f"http://{self.host}"
        _INSECURE_BASES[self.host] = self._base
        return resp

    def _request(self, method: str, url: str, headers: dict[str, str]) -> requests.Response:
        try:
            return self._session.request(
                method,
                url,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=True,
                verify=not self.insecure,
            )
        except requests.exceptions.SSLError as exc:
            if url.startswith("https://") and not self.insecure:
                raise RegistryError(
                    self.name, tls_failed(self.name, self.host, _ssl(exc))
                ) from None
            raise RegistryError(self.name, f"TLS: {_ssl(exc)}") from None
        except requests.RequestException as exc:
            raise RegistryError(self.name, short_reason(str(exc))) from None

    def _retry(self, call: Any) -> requests.Response:
        """`call()`, again after a wait while the registry answers 429 (rate limited)."""
        wait = RATE_LIMIT_WAIT
        for attempt in range(1, RATE_LIMIT_TRIES + 1):
            resp: requests.Response = call()
            if resp.status_code != 429:
                return resp
            if attempt == RATE_LIMIT_TRIES:
                break
            time.sleep(min(_retry_after(resp) or wait, RATE_LIMIT_MAX_WAIT))
            wait *= 2
        raise RegistryError(
            self.name,
            f"rate limited (429 Too Many Requests) {RATE_LIMIT_TRIES} times in a row; wait, or "
            "log in (`docker login`) for a higher limit",
        )


def _challenge(params: str) -> dict[str, str | None]:
    """`realm="…",service="…",scope="…"` → dict (requests' parser of such lists)."""
    parsed: dict[str, str | None] = parse_dict_header(params)  # type: ignore[no-untyped-call]
    return parsed


def _retry_after(resp: requests.Response) -> float | None:
    try:
        return max(0.0, float(resp.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _status(resp: requests.Response) -> str:
    return f"{resp.status_code} {resp.reason}".strip()


def _ssl(exc: BaseException) -> str:
    text = str(exc)
    for needle in (
        "CERTIFICATE_VERIFY_FAILED",
        "WRONG_VERSION_NUMBER",
        "wrong version number",
        "record layer failure",
        "hostname mismatch",
        "self-signed certificate",
        "unable to get local issuer certificate",
    ):
        if needle in text:
            detail = text.split(needle, 1)[1].split("(_ssl", 1)[0].strip(" :)'\"")
            return f"{needle}{': ' + detail if detail else ''}"
    return short_reason(text)


def manifest_digest(ref: str, insecure: Iterable[str] = (), timeout: float = 10.0) -> str | None:
    """The registry's digest for `ref`, or None when it has no such tag."""
    registry, path, tag = split_ref(ref)
    with Registry(registry, insecure, timeout) as reg:
        return reg.manifest_digest(path, tag)


def push_error(ref: str, message: str) -> RegistryError:
    """The daemon's push error, said as what to do about it."""
    registry, repo, _ = split_ref(ref)
    low = message.lower()
    logged_in = credentials(registry).present
    if "toomanyrequests" in low or "429" in low or "rate limit" in low:
        reason = f"rate limited (429 Too Many Requests) while pushing {repo}: wait, or log in"
    elif "x509" in low or "certificate" in low or "tls" in low:
        reason = tls_failed(registry, registry, short_reason(message))
    elif "name unknown" in low or "name_unknown" in low or "does not exist" in low:
        reason = (
            f"repository {repo} does not exist and {registry} does not create repositories on "
            f"push: create it first ({short_reason(message)})"
        )
    elif any(w in low for w in ("denied", "forbidden", "403", "unauthorized", "401")) or (
        "authentication required" in low
    ):
        reason = denied(registry, repo) if logged_in else not_logged_in(registry)
    else:
        reason = short_reason(message)
    return RegistryError(registry, reason)
