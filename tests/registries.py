"""Private registries for the tests, each a real `docker-registry` (Debian's distribution 2.8)
started by a fixture on a free port: htpasswd Basic auth, TLS with a self-signed CA (installed
for the daemon under /etc/docker/certs.d/<host:port>/ca.crt), token auth with a small token
server, and a plain-HTTP impostor. Register with `pytest_plugins = ["tests.registries"]`.

The TLS registry listens on a non-loopback address of this machine (the docker0 gateway): the
daemon treats 127.0.0.0/8 as insecure (it would skip verification there), so only a
non-loopback address proves that the daemon and devloop both verify against certs.d.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.server
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import bcrypt
import docker
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CERTS_D = Path("/etc/docker/certs.d")
USER, PASSWORD = "i19-user", "i19-secret"
READER = "i19-reader"  # token auth: may pull, never push


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def outside_address(client: docker.DockerClient) -> str:
    """A non-loopback address of this machine the daemon can reach: the bridge gateway."""
    config = client.api.inspect_network("bridge")["IPAM"]["Config"][0]
    if "Gateway" in config:
        return str(ipaddress.ip_address(config["Gateway"]))
    # a fresh dockerd may leave Gateway out of IPAM; the default bridge's gateway is then
    # the subnet's first address (docker0's)
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


@dataclass
class Registry:
    host: str  # host:port, as it goes into devloop.yaml
    scheme: str
    ca: Path | None = None
    auth: tuple[str, str] | None = None  # basic credentials for the test's own API calls
    token_url: str | None = None

    def digest(self, repo: str, tag: str) -> str | None:
        """What the registry holds for repo:tag, asked with the test's own credentials."""
        url = f"{self.scheme}://{self.host}/v2/{repo}/manifests/{tag}"
        headers = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
        verify = str(self.ca) if self.ca else True  # per call: REQUESTS_CA_BUNDLE beats a session's
        if self.token_url:
            token = requests.get(
                self.token_url,
                params={"service": "i19", "scope": f"repository:{repo}:pull"},
                auth=self.auth,
                timeout=10,
            ).json()["token"]
            headers["Authorization"] = f"Bearer {token}"
            r = requests.head(url, headers=headers, timeout=10)
        else:
            r = requests.head(url, headers=headers, auth=self.auth, verify=verify, timeout=10)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.headers["Docker-Content-Digest"]


def docker_config(tmp_path: Path, registry: str, user: str, password: str) -> Path:
    """A DOCKER_CONFIG directory whose config.json has `auths` for `registry` (what `docker
    login` writes without a credential store)."""
    folder = tmp_path / f"docker-config-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {registry: {"auth": token}}}))
    return folder


# --- certificates -----------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _cert(
    subject: str,
    key: rsa.RSAPrivateKey,
    issuer: tuple[str, rsa.RSAPrivateKey] | None = None,
    ip: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        # key identifiers, as every real CA writes them (Python 3.13's VERIFY_X509_STRICT
        # refuses a chain without the Authority Key Identifier)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# --- token server -------------------------------------------------------------------------------


class TokenServer:
    """The registry's `token` auth realm: Basic credentials in, a JWT signed with a key whose
    certificate is in the registry's rootcertbundle out (x5c header), granting what the user's
    ACL allows of what was asked."""

    def __init__(self, folder: Path, acl: dict[str, tuple[str, set[str]]]) -> None:
        self.key = _key()
        self.cert = _cert("i19-token-issuer", self.key)
        self.bundle = folder / "token-root.pem"
        self.bundle.write_bytes(_pem(self.cert))
        self.acl = acl
        self.requests: list[dict[str, Any]] = []
        self.rate_limit = 0  # answer 429 this many times first
        self.refresh_tokens = {"i19-refresh-token": USER}  # identitytoken → user
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._answer(self)

            def do_POST(self) -> None:  # OAuth2 refresh-token grant (an `identitytoken` login)
                size = int(self.headers.get("Content-Length", "0"))
                server._answer(self, parse_qs(self.rfile.read(size).decode()))

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _answer(
        self, h: http.server.BaseHTTPRequestHandler, form: dict[str, list[str]] | None = None
    ) -> None:
        query = form if form is not None else parse_qs(urlparse(h.path).query)
        if form is not None:
            refresh = form.get("refresh_token", [""])[0]
            user = self.refresh_tokens.get(refresh) if form.get("grant_type") else None
        else:
            user = self._user(h.headers.get("Authorization", ""))
        self.requests.append({"user": user, "scope": query.get("scope", [])})
        if self.rate_limit > 0:
            self.rate_limit -= 1
            self._send(h, 429, {"errors": [{"code": "TOOMANYREQUESTS"}]}, {"Retry-After": "0"})
            return
        if user is None:
            self._send(h, 401, {"errors": [{"code": "UNAUTHORIZED"}]})
            return
        allowed = self.acl[user][1] if user else set()
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":", 2)
            granted = sorted(set(actions.split(",")) & allowed)
            access.append({"type": kind, "name": name, "actions": granted})
        token = self._jwt(user or "", query.get("service", [""])[0], access)
        self._send(h, 200, {"token": token, "access_token": token, "expires_in": 300})

    def _user(self, header: str) -> str | None:
        if not header.startswith("Basic "):
            return ""  # anonymous: a token with no access
        name, _, password = base64.b64decode(header[6:]).decode().partition(":")
        known = self.acl.get(name)
        return name if known and known[0] == password else None

    def _send(
        self, h: http.server.BaseHTTPRequestHandler, code: int, body: Any, extra: Any = None
    ) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _jwt(self, user: str, service: str, access: list[dict[str, Any]]) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {
            "iss": "i19-issuer",
            "sub": user,
            "aud": service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        sig = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{b64(sig)}"


# --- the registry process ----------------------------------------------------------------------


@dataclass
class Started:
    registries: list[subprocess.Popen[bytes]] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)


def _serve(folder: Path, addr: str, extra: str, started: Started) -> None:
    """`docker-registry serve` with `extra` config (auth, tls) on `addr`; waits until it listens."""
    cfg = folder / "registry.yml"
    cfg.write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}, "
        "delete: {enabled: true}}\n"
        f"{extra}"
    )
    with (folder / "registry.log").open("wb") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=log, stderr=log)
    started.registries.append(proc)
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 0.5):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"docker-registry did not start: {(folder / 'registry.log').read_text()}")


@pytest.fixture(scope="module")
def private_registries(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[dict[str, Any]]:
    """{'basic': Registry, 'tls': Registry, 'token': Registry, 'token_server': TokenServer}."""
    if shutil.which("docker-registry") is None:
        pytest.fail("docker-registry is missing (Debian package docker-registry; .ci/install.sh)")
    root = tmp_path_factory.mktemp("i19-registries")
    started = Started()
    out: dict[str, Any] = {}
    try:
        # htpasswd Basic auth on loopback (plain HTTP: the daemon and devloop both allow it)
        basic = root / "basic"
        basic.mkdir()
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
        (basic / "htpasswd").write_text(f"{USER}:{hashed}\n")
        addr = f"127.0.0.1:{free_port()}"
        _serve(
            basic,
            addr,
            f"http: {{addr: {addr}}}\n"
            f"auth: {{htpasswd: {{realm: i19, path: {basic / 'htpasswd'}}}}}\n",
            started,
        )
        out["basic"] = Registry(addr, "http", auth=(USER, PASSWORD))

        # TLS with a self-signed CA, on a non-loopback address, CA installed for the daemon
        tls = root / "tls"
        tls.mkdir()
        ip = outside_address(docker_client)
        ca_key, key = _key(), _key()
        ca = _cert("i19 test CA", ca_key)
        (tls / "ca.crt").write_bytes(_pem(ca))
        (tls / "server.crt").write_bytes(_pem(_cert(ip, key, ("i19 test CA", ca_key), ip=ip)))
        (tls / "server.key").write_bytes(_pem_key(key))
        addr = f"{ip}:{free_port(ip)}"
        _serve(
            tls,
            addr,
            f"http: {{addr: {addr}, tls: {{certificate: {tls / 'server.crt'}, "
            f"key: {tls / 'server.key'}}}}}\n",
            started,
        )
        certs = CERTS_D / addr
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copy(tls / "ca.crt", certs / "ca.crt")
        started.cleanups.append(lambda: shutil.rmtree(certs, ignore_errors=True))
        out["tls"] = Registry(addr, "https", ca=tls / "ca.crt")
        out["tls_certs"] = certs

        # token auth: the registry sends Bearer challenges to a token server in this process
        tok = root / "token"
        tok.mkdir()
        server = TokenServer(
            tok, {USER: (PASSWORD, {"pull", "push"}), READER: (PASSWORD, {"pull"})}
        )
        started.cleanups.append(server.close)
        addr = f"127.0.0.1:{free_port()}"
        _serve(
            tok,
            addr,
            f"http: {{addr: {addr}}}\n"
            f"auth: {{token: {{realm: '{server.url}', service: i19, issuer: i19-issuer, "
            f"rootcertbundle: {server.bundle}}}}}\n",
            started,
        )
        out["token"] = Registry(addr, "http", auth=(USER, PASSWORD), token_url=server.url)
        out["token_server"] = server
        yield out
    finally:
        for proc in started.registries:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for cleanup in started.cleanups:
            cleanup()


class Impostor:
    """A plain-HTTP server on a non-loopback address that says yes to every manifest, with a
    fake digest; it records every request it could parse as HTTP."""

    FAKE = "sha256:" + "f" * 64

    def __init__(self, host: str) -> None:
        self.requests: list[str] = []
        me = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _yes(self) -> None:
                me.requests.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Docker-Content-Digest", me.FAKE)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET = _yes

            def log_message(self, *args: Any) -> None:
                pass

            def log_error(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, free_port(host)), Handler)
        self.host = f"{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def impostor(docker_client: docker.DockerClient) -> Iterator[Impostor]:
    fake = Impostor(outside_address(docker_client))
    yield fake
    fake.close()


def env_for(config_dir: Path | None) -> dict[str, str | None]:
    """DOCKER_CONFIG for a run: a given config, or an empty one (no credentials at all)."""
    return {"DOCKER_CONFIG": str(config_dir) if config_dir else os.devnull + "-i19-none"}
