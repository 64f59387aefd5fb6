"""The relay (a real process) and devloop's tunnel to it, on loopback: no container needed."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devloop.bridge import hosts
from devloop.bridge import relay as relay_module
from devloop.bridge.relay import matches
from devloop.bridge.tunnel import Tunnel, tcp_dial

RELAY = Path(relay_module.__file__)  # the installed file: what the relay image copies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server(host: str, port: int, name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _wait_port(host: str, port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{host}:{port} never opened")


def _get(url: str, headers: dict[str, str] | None = None) -> str:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return str(r.read().decode())


@pytest.fixture
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[int, int, int]]:
    """The relay on 127.0.0.3 (the 'pod'), the original on 127.0.0.1, the local process on
    127.0.0.1 too (another port); devloop's tunnel in between."""
    header: str | None = getattr(request, "param", None)
    port, control, local = _free_port(), _free_port(), _free_port()
    original = _server("127.0.0.1", port, "original")
    mine = _server("127.0.0.1", local, "local")
    argv = [sys.executable, str(RELAY), "--bind", "127.0.0.3", "--control", str(control)]
    argv += ["--listen", str(port)]
    if header:
        argv += ["--header", header, "--original", "127.0.0.1"]
    relay = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _wait_port("127.0.0.3", control)
    tunnel = Tunnel(tcp_dial("127.0.0.3", control), {port: local}, idle=2)
    tunnel.start()
    yield port, control, local
    tunnel.stop()
    relay.terminate()
    relay.wait(10)
    for s in (original, mine):
        s.shutdown()
        s.server_close()


def test_every_connection_reaches_the_local_process(setup: tuple[int, int, int]) -> None:
    port, _, _ = setup
    assert [_get(f"http://127.0.0.3:{port}/") for _ in range(10)] == ["local"] * 10


@pytest.mark.parametrize("setup", ["x-dev=alice"], indirect=True)
def test_a_personal_intercept_takes_only_requests_with_the_header(
    setup: tuple[int, int, int],
) -> None:
    port, _, _ = setup
    url = f"http://127.0.0.3:{port}/"
    assert _get(url, {"X-Dev": "alice"}) == "local"
    assert _get(url) == "original"
    assert _get(url, {"x-dev": "bob"}) == "original"
    assert _get(url, {"x-dev": "alice"}) == "local"


def test_matches_reads_only_http1_heads() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Dev:  alice \r\n\r\n"
    assert matches(head, ("x-dev", "alice"))
    assert not matches(head, ("x-dev", "bob"))
    assert not matches(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ("x-dev", "alice"))
    assert not matches(b"\x16\x03\x01binary", ("x-dev", "alice"))


def test_hosts_block_is_removed_when_its_devloop_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n")
    dead = subprocess.Popen(["true"])
    dead.wait()
    path.write_text(
        path.read_text()
        + f"# devloop p1 pid {dead.pid} begin\n127.9.0.2 api\n# devloop p1 pid {dead.pid} end\n"
    )
    hosts.add("p1", [("127.9.0.3", "web")], path=path)
    hosts.add("p2", [("127.9.0.4", "web")], path=path)
    assert hosts.remove("p1", only_stale=True, path=path) == 2  # the dead one, and ours
    assert path.read_text().splitlines()[0] == "127.0.0.1 localhost"
    assert "127.9.0.4 web" in path.read_text()  # another project's block stays
    assert hosts.remove("p2", path=path) == 1
    assert path.read_text() == "127.0.0.1 localhost\n"


def test_hosts_blocks_of_dead_devloops_of_any_project_go_and_live_ones_are_named(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hosts"
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        d, a = dead.pid, alive.pid
        path.write_text(
            f"# devloop other pid {d} begin\n127.9.0.2 web\n# devloop other pid {d} end\n"
            f"# devloop live pid {a} begin\n127.9.0.3 db\n# devloop live pid {a} end\n"
        )
        assert hosts.taken(["web", "db", "api"], path=path) == ["db"]
        assert hosts.remove(None, path=path) == 1
        assert "127.9.0.2 web" not in path.read_text()
        assert "127.9.0.3 db" in path.read_text()
    finally:
        alive.kill()
        alive.wait()
