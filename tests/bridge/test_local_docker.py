"""`dev --local api` on the Docker target, end to end: the shop sample (frontend calls api) with
the api run as a local process started by devloop, real signals, real containers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import docker
import pytest
import yaml

from devloop.bridge.docker import LABEL_RELAY

ROOT = Path(__file__).resolve().parents[2]
LOCAL_API = """
import json, os, urllib.request
from shoplib import serve

def peer():
    host = os.environ.get("FRONTEND_HOST", "frontend")
    port = os.environ.get("FRONTEND_PORT", "8080")
    with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=10) as r:
        return 200, {"peer": json.loads(r.read())}

serve("api", int(os.environ["PORT"]), {
    "/": lambda: (200, {"service": "api", "local": True, "greeting": os.environ["GREETING"]}),
    "/peer": peer,
})
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def shop(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[tuple[Path, str, int]]:
    name = f"i18-{uuid.uuid4().hex[:8]}"
    shutil.copytree(ROOT / "samples" / "shop", tmp_path / "samples" / "shop")
    config = yaml.safe_load((ROOT / "devloop.yaml").read_text())
    services = {n: dict(config["services"][n]) for n in ("base", "api", "frontend")}
    for svc in services.values():
        svc["image"] = svc["image"].replace("devloop-samples/", f"{name}/")
    api_port, web_port = _free_port(), _free_port()
    services["api"]["values"] = {"port": api_port, "probe_path": "/healthz"}
    services["api"]["env"] = {"PORT": str(api_port), "GREETING": "from the pod's env"}
    services["api"]["local"] = {
        "command": f"{sys.executable} local_api.py",
        "env": {"PYTHONPATH": str(tmp_path / "samples" / "shop" / "base")},
    }
    services["frontend"]["ports"] = [f"{web_port}:8080"]
    services["frontend"]["env"] = {"API_URL": f"http://api:{api_port}/"}
    (tmp_path / "local_api.py").write_text(LOCAL_API)
    (tmp_path / "devloop.yaml").write_text(yaml.safe_dump({"name": name, "services": services}))
    yield tmp_path, name, web_port
    subprocess.run(
        [sys.executable, "-m", "devloop", "-C", str(tmp_path), "delete", "--images"],
        capture_output=True,
        timeout=300,
    )
    left = docker_client.containers.list(
        all=True, filters={"label": f"app.kubernetes.io/part-of={name}"}
    )
    assert not left, f"left behind: {[c.name for c in left]}"


RUNNING: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_devloop_left() -> Iterator[None]:
    """A failed test must not leave a `dev --local` running (its relay, hosts block, process)."""
    yield
    while RUNNING:
        proc = RUNNING.pop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


class Dev:
    """`devloop dev` as a real child process, its JSON events read as they come."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devloop",
                "-C",
                str(directory),
                "--output",
                "json",
                "dev",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        RUNNING.append(self.proc)
        self.events: Queue[dict[str, Any]] = Queue()
        self.seen: list[dict[str, Any]] = []
        self.err = ""
        self._err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        self._err.extend(self.proc.stderr)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))

    def wait_for(self, kind: str, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except Empty:
                break
            self.seen.append(event)
            if event["event"] == kind:
                return event
            if event["event"] == "fatal":
                break
        self.proc.kill()
        self.proc.wait(30)
        raise AssertionError(f"no {kind} event; saw {self.seen[-15:]}")

    def interrupt(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(120)
        time.sleep(0.2)  # the reader thread drains what is left of stdout
        while not self.events.empty():
            self.seen.append(self.events.get())
        time.sleep(0.2)
        self.err = "".join(self._err)
        self.close()
        return code

    def close(self) -> None:
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _get(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return dict(json.loads(r.read()))


def _api_containers(client: docker.DockerClient, name: str) -> list[Any]:
    return client.containers.list(
        filters={"label": [f"app.kubernetes.io/part-of={name}", "devloop.dev/service=api"]}
    )


@pytest.mark.docker
def test_local_api_serves_the_frontend_and_ctrl_c_restores_the_original(
    shop: tuple[Path, str, int], docker_client: docker.DockerClient
) -> None:
    directory, name, web_port = shop
    dev = Dev(directory, "--keep", "--local", "api", "--env-urls", "--no-hosts")
    started = dev.wait_for("intercept_started")
    assert started["service"] == "api" and started["pid"] > 0
    (original,) = _api_containers(docker_client, name)
    before = original.attrs
    frontend = f"http://127.0.0.1:{web_port}/"
    # the frontend's call to http://api:PORT/ is served by the local process, with the pod's env
    body = _get(frontend)
    assert body["api"] == {"service": "api", "local": True, "greeting": "from the pod's env"}
    assert dev.wait_for("intercept_relayed")["total"] >= 1
    # the local process reaches another service by FRONTEND_HOST/FRONTEND_PORT (--env-urls)
    api_port = started["ports"][0]
    assert _get(f"http://127.0.0.1:{api_port}/peer") == {"peer": {"status": "ok"}}
    assert started["hosts"] is False
    assert f"# devloop {name} pid" not in Path("/etc/hosts").read_text()
    code = dev.interrupt()
    assert code == 130, dev.err
    ended = [e for e in dev.seen if e["event"] == "intercept_ended"]
    assert ended and ended[0]["relayed"] >= 1
    # restored: the same container, its config untouched, its Service name back; no relay,
    # no hosts block, no local process
    (after,) = _api_containers(docker_client, name)
    after.reload()
    assert after.id == original.id
    assert after.attrs["Config"] == before["Config"]
    assert after.attrs["HostConfig"] == before["HostConfig"]
    net = after.attrs["NetworkSettings"]["Networks"][f"devloop-{name}"]
    assert set(net["Aliases"]) == {"api", after.name, after.id[:12]}
    relays = docker_client.containers.list(all=True, filters={"label": LABEL_RELAY})
    assert not [c for c in relays if c.labels.get("app.kubernetes.io/part-of") == name]
    assert f"# devloop {name} pid" not in Path("/etc/hosts").read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(started["pid"], 0)
    assert _get(frontend)["api"]["service"] == "api"
    assert "local" not in _get(frontend)["api"]  # the original answers again

    # a personal intercept: only requests carrying the header reach the local process
    dev = Dev(directory, "--keep", "--local", "api", "--intercept-header", "x-dev=alice")
    started = dev.wait_for("intercept_started")
    assert started["header"] == "x-dev=alice"
    if os.geteuid() == 0:  # by its name, through the /etc/hosts block devloop added
        assert started["hosts"] is True
        assert f"# devloop {name} pid" in Path("/etc/hosts").read_text()
        assert _get(f"http://127.0.0.1:{api_port}/peer") == {"peer": {"status": "ok"}}
    assert "local" not in _get(frontend)["api"]  # no header: the original pod
    (web,) = docker_client.containers.list(
        filters={"label": [f"app.kubernetes.io/part-of={name}", "devloop.dev/service=frontend"]}
    )
    ask = (
        "import urllib.request as u, sys; r = u.Request(sys.argv[1], headers={'x-dev': "
        "sys.argv[2]}); print(u.urlopen(r, timeout=20).read().decode())"
    )
    api_url = f"http://api:{api_port}/"
    for who, local in (("alice", True), ("bob", False), ("alice", True)):
        code, out = web.exec_run(["python3", "-c", ask, api_url, who])
        assert code == 0, out
        assert json.loads(out).get("local", False) is local, (who, out)
    assert dev.interrupt(signal.SIGTERM) == 143  # SIGTERM restores as Ctrl-C does
    (api,) = _api_containers(docker_client, name)  # this session's (it replaced the last one's)
    aliases = api.attrs["NetworkSettings"]["Networks"][f"devloop-{name}"]["Aliases"]
    assert set(aliases) == {"api", api.name, api.id[:12]}

    # after a SIGKILL, `devloop delete` removes the relay and the hosts block
    dev = Dev(directory, "--local", "api")
    pid = dev.wait_for("intercept_started")["pid"]
    dev.proc.kill()
    dev.proc.wait(30)
    dev.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the local process dies with devloop
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the local process {pid} outlived a killed devloop")
    assert [
        c
        for c in docker_client.containers.list(filters={"label": LABEL_RELAY})
        if c.labels.get("app.kubernetes.io/part-of") == name
    ]
    gone = subprocess.run(
        [sys.executable, "-m", "devloop", "-C", str(directory), "delete"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gone.returncode == 0, gone.stderr
    relays = docker_client.containers.list(all=True, filters={"label": LABEL_RELAY})
    assert not [c for c in relays if c.labels.get("app.kubernetes.io/part-of") == name]
    assert f"# devloop {name} pid" not in Path("/etc/hosts").read_text()


@pytest.mark.docker
def test_the_dashboard_shows_the_intercept_and_counts_relayed_connections(
    shop: tuple[Path, str, int],
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip(f"no {chromium} (apt-get install chromium; .ci/install.sh does)")
    directory, _, web_port = shop
    dev = Dev(directory, "--local", "api", "--env-urls", "--no-hosts")
    started = dev.wait_for("intercept_started")
    (board,) = [e for e in dev.seen if e["event"] == "dashboard"]
    profile = tempfile.mkdtemp(prefix="devloop-i18-chromium-")
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                profile,
                executable_path=chromium,
                headless=True,
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            try:
                page = browser.new_page()
                page.goto(board["url"])
                state = '#services tr[data-service="api"] td.state'
                page.wait_for_function(
                    "([sel, pid]) => (document.querySelector(sel)?.textContent || '')"
                    ".includes(`local pid ${pid}`)",
                    arg=[state, started["pid"]],
                    timeout=30_000,
                )
                assert _get(f"http://127.0.0.1:{web_port}/")["api"]["local"] is True
                page.wait_for_function(
                    "(sel) => /[1-9]\\d* relayed/.test(document.querySelector(sel)?.textContent"
                    " || '')",
                    arg=state,
                    timeout=30_000,
                )
                logs = page.inner_text("#logs")
                assert f"local pid {started['pid']}" in logs
            finally:
                browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
        assert dev.interrupt() == 130, dev.err
