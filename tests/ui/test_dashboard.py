"""The dashboard of a real `devloop dev`, driven in headless Chromium (Debian's `chromium`, by
Playwright): rows, the edit timeline, the rebuild button, the log filter, and the refusals."""

from __future__ import annotations

import http.client
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import IN_CI
from tests.devproc import HTTPD_DOCKERFILE, DevProcess, eventually, free_port, http_get

pytestmark = [pytest.mark.docker]

ROOT = Path(__file__).resolve().parent.parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

CONFIG = """\
name: {name}
target: docker
services:
  web:
    image: devloop-test-ui/{name}-web
    context: app
    archetype: web
    ports: ["{web_port}:8080"]
    values: {{probe_path: /index.html}}
    sync:
      - {{src: "site/**", dest: /www}}
      - {{src: "conf/**", dest: /conf, then: restart}}
  hello:
    image: devloop-test-ui/{name}-hello
    context: hello
    archetype: web
    ports: ["{hello_port}:8080"]
    sync:
      - {{src: "site/**", dest: /www}}
"""


@dataclass
class Session:
    dev: DevProcess
    root: Path
    url: str
    page: Any  # playwright.sync_api.Page
    browser: Any  # its BrowserContext
    name: str = ""  # the project's


@pytest.fixture(scope="module")
def session(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, base_image: str
) -> Iterator[Session]:
    """`devloop dev` of the hello sample and the httpd fixture, and a browser on its dashboard."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing: .ci/install.sh installs Debian's chromium")
        pytest.skip(f"no {CHROMIUM} (apt-get install chromium)")
    root = tmp_path_factory.mktemp("ui")
    name = f"ui{uuid.uuid4().hex[:8]}"
    app = root / "app"
    (app / "site").mkdir(parents=True)
    (app / "conf").mkdir()
    (app / "Dockerfile").write_text(HTTPD_DOCKERFILE)
    (app / "site" / "index.html").write_text("v1\n")
    (app / "conf" / "message").write_text("first\n")
    (app / "README.md").write_text("outside the sync rules\n")
    shutil.copytree(ROOT / "samples" / "hello", root / "hello")
    (root / "devloop.yaml").write_text(
        CONFIG.format(name=name, web_port=free_port(), hello_port=free_port())
    )
    ui_port = free_port()
    dev = DevProcess(root, "--ui-port", str(ui_port))
    with sync_api.sync_playwright() as pw:
        profile = tempfile.mkdtemp(prefix="devloop-ui-chromium-")  # a fresh profile
        browser = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            url = dev.wait_event("dashboard", timeout=60)["url"]
            assert url == f"http://127.0.0.1:{ui_port}/"
            for svc in ("web", "hello"):
                dev.wait_event("ready", timeout=180, service=svc)
            page = browser.new_page()
            page.goto(url)
            yield Session(dev, root, url, page, browser, name)
        finally:
            browser.close()
            shutil.rmtree(profile, ignore_errors=True)
            assert dev.interrupt() == 130, dev.describe()
            _clean(docker_client, name)


def _clean(client: docker.DockerClient, name: str) -> None:
    part_of = {"label": f"app.kubernetes.io/part-of={name}"}
    for c in client.containers.list(all=True, filters=part_of):
        c.remove(force=True)
    for n in client.networks.list(filters=part_of):
        n.remove()
    for svc in ("web", "hello"):
        for img in client.images.list(name=f"devloop-test-ui/{name}-{svc}"):
            client.images.remove(img.id, force=True)


def _cell(page: Any, service: str, column: str) -> str:
    return str(page.inner_text(f'#services tr[data-service="{service}"] td.{column}'))


def test_every_service_has_a_row_with_its_state_image_replicas_and_url(session: Session) -> None:
    page, dev = session.page, session.dev
    for svc in ("web", "hello"):
        page.wait_for_selector(f'#services tr[data-service="{svc}"] td.state.ready', timeout=30_000)
        built = [e for e in dev.events if e["event"] == "deploy" and e["service"] == svc]
        ready = [e for e in dev.events if e["event"] == "ready" and e["service"] == svc]
        assert _cell(page, svc, "state") == "ready"
        assert _cell(page, svc, "image") == built[-1]["image"]
        assert _cell(page, svc, "replicas") == "1"
        assert _cell(page, svc, "urls") == ready[-1]["urls"][0]
        assert _cell(page, svc, "error") == ""


def test_a_page_that_opens_later_catches_up_from_the_replay_buffer(session: Session) -> None:
    late = session.browser.new_page()
    try:
        late.goto(session.url)
        late.wait_for_selector('#services tr[data-service="hello"] td.state.ready', timeout=30_000)
        assert late.inner_text("#link") == "live"
    finally:
        late.close()


def test_an_edit_shows_in_the_timeline_with_the_milliseconds_of_each_stage(
    session: Session,
) -> None:
    dev, page = session.dev, session.page
    mark = dev.mark()
    (session.root / "app" / "conf" / "message").write_text("second\n")
    synced = dev.wait_event("sync", since=mark, service="web")
    restarted = dev.wait_event("restart", since=mark, service="web")
    # after the in-place restart the session waits for the service to serve again
    ready = dev.wait_event("ready", since=mark, service="web")
    assert ready["ms"] >= restarted["ms"]
    assert dev.events.index(synced) < dev.events.index(ready)
    lane = '#timeline li:first-child .lane[data-service="web"]'
    page.wait_for_selector(f'{lane} .stage[data-stage="ready"]', timeout=30_000)
    assert page.inner_text("#timeline li:first-child .edit-head").endswith("app/conf/message")
    stages = page.eval_on_selector_all(
        f"{lane} .stage", "nodes => nodes.map(n => [n.dataset.stage, Number(n.dataset.ms)])"
    )
    assert [s for s, _ in stages] == ["batched", "planned", "sent", "applied", "restarted", "ready"]
    at = dict(stages)
    assert at["batched"] == dev.wait_event("changes", since=mark)["ms"]
    assert at["planned"] == synced["planned_ms"]
    assert at["sent"] == synced["sent_ms"]
    assert at["applied"] == synced["ms"]
    assert at["restarted"] == restarted["ms"]
    assert at["ready"] == ready["ms"]
    assert [ms for _, ms in stages] == sorted(ms for _, ms in stages)
    assert _cell(page, "web", "restarts") == "1"
    assert _cell(page, "web", "sync") == f"1 files, {synced['ms']:.1f} ms"


def test_the_log_filter_shows_one_service_and_the_search_narrows_it(session: Session) -> None:
    page = session.page
    hello_url = next(
        e["urls"][0]
        for e in session.dev.events
        if e["event"] == "ready" and e.get("urls") and e["service"] == "hello"
    )
    assert http_get(hello_url)[0] == 200  # httpd -v logs the request
    page.select_option("#log-service", "hello")
    page.uncheck("#log-events")

    def lines() -> list[tuple[str, str]]:
        return [
            (x[0], x[1])
            for x in page.eval_on_selector_all(
                "#logs .line", "ns => ns.map(n => [n.dataset.service, n.textContent])"
            )
        ]

    shown = eventually(lambda: [t for t in lines() if "response:200" in t[1]] and lines(), 30)
    assert {svc for svc, _ in shown} == {"hello"}
    page.fill("#log-search", "serving")  # web's start line: not hello's
    eventually(lambda: lines() == [], 10, what="no hello line says 'serving'")
    page.select_option("#log-service", "web")
    eventually(lambda: lines() and all("serving" in t for _, t in lines()), 10)
    page.fill("#log-search", "")
    page.select_option("#log-service", "")
    page.check("#log-events")


def test_the_rebuild_button_rebuilds_that_service_only(session: Session) -> None:
    dev, page = session.dev, session.page
    mark = dev.mark()
    page.click('#services tr[data-service="hello"] button[data-command="rebuild"]')
    dev.wait_event("request", since=mark, command="rebuild", service="hello")
    dev.wait_event("build_started", since=mark, service="hello")
    dev.wait_event("ready", since=mark, service="hello", timeout=180)
    built = {e["service"] for e in dev.events[mark:] if e["event"] == "build_started"}
    assert built == {"hello"}
    assert not [e for e in dev.events[mark:] if e["event"] == "deploy" and e["service"] == "web"]
    page.wait_for_selector('#builds [data-service="hello"] details:nth-of-type(1)', timeout=10_000)
    eventually(
        lambda: page.inner_text('#services tr[data-service="hello"] td.state') == "ready", 30
    )
    assert page.locator('#builds [data-service="hello"] details').count() == 2
    assert "trigger: rebuild requested" in page.inner_text('#builds [data-service="hello"] details')
    lane = '#timeline li:first-child .lane[data-service="hello"] .stage'
    stages = page.eval_on_selector_all(lane, "ns => ns.map(n => n.dataset.stage)")
    assert stages == ["built", "deployed", "ready"]
    assert page.locator('#builds [data-service="web"] details').count() == 1


def test_the_restart_button_restarts_that_service_s_process(session: Session) -> None:
    dev, page = session.dev, session.page
    before = int(_cell(page, "web", "restarts"))
    mark = dev.mark()
    page.click('#services tr[data-service="web"] button[data-command="restart"]')
    dev.wait_event("restart", since=mark, service="web")
    assert not [e for e in dev.events[mark:] if e["event"] == "restart" and e["service"] != "web"]
    eventually(lambda: int(_cell(page, "web", "restarts")) == before + 1, 30)


def test_pause_and_resume_from_the_header(session: Session) -> None:
    dev, page = session.dev, session.page
    mark = dev.mark()
    page.click("#pause")
    dev.wait_event("paused", since=mark)
    eventually(lambda: page.inner_text("#pause") == "resume", 30)
    assert _cell(page, "hello", "state") == "ready (paused)"
    mark = dev.mark()
    page.click("#pause")
    dev.wait_event("resumed", since=mark)
    eventually(lambda: page.inner_text("#pause") == "pause", 30)
    eventually(lambda: _cell(page, "hello", "state") == "ready", 30)


def test_a_wrong_host_or_a_missing_token_is_refused(session: Session) -> None:
    port = int(session.url.rsplit(":", 1)[1].strip("/"))
    token = session.page.get_attribute('meta[name="devloop-token"]', "content")
    assert token and len(token) >= 24

    def ask(method: str, path: str, host: str, headers: dict[str, str] | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            body = '{"command": "nonsense"}' if method == "POST" else None
            conn.request(method, path, body, {"Host": host, **(headers or {})})
            return conn.getresponse().status
        finally:
            conn.close()

    here = f"127.0.0.1:{port}"
    assert ask("GET", "/", here) == 200
    assert ask("GET", "/", f"localhost:{port}") == 200
    assert ask("GET", "/", f"attacker.example:{port}") == 403  # DNS rebinding
    assert ask("GET", "/", "127.0.0.1") == 403
    assert ask("GET", "/events", f"attacker.example:{port}") == 403
    assert ask("POST", "/api/action", here) == 403  # no token
    assert ask("POST", "/api/action", here, {"X-Devloop-Token": "guess"}) == 403
    assert ask("POST", "/api/action", f"evil:{port}", {"X-Devloop-Token": token}) == 403
    assert ask("GET", "/api/action", here, {"X-Devloop-Token": token}) == 405  # never on GET
    # the token is right: the session itself refuses the unknown command
    assert ask("POST", "/api/action", here, {"X-Devloop-Token": token}) == 400


def test_screenshot(session: Session, tmp_path: Path) -> None:
    """The page after the scenario; DEVLOOP_SCREENSHOT=docs/dashboard.png updates the README's."""
    page = session.page
    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if target := os.environ.get("DEVLOOP_SCREENSHOT"):
        shutil.copyfile(shot, target)


def test_a_container_killed_twice_is_reported_crashed_and_its_row_shows_crashing(
    session: Session, docker_client: docker.DockerClient
) -> None:
    dev, page = session.dev, session.page
    labels = [f"app.kubernetes.io/part-of={session.name}", "devloop.dev/service=hello"]
    for n in (1, 2):
        mark = dev.mark()
        (container,) = docker_client.containers.list(filters={"label": labels})
        container.kill()
        crashed = dev.wait_event("crashed", since=mark, service="hello", timeout=60)
        assert crashed["container"] == container.name
        assert crashed["exit_code"] == 137
        assert crashed["restarts"] == n
        page.wait_for_selector(
            '#services tr[data-service="hello"] td.state.crashing', timeout=30_000
        )
        dev.wait_event("ready", since=mark, service="hello", timeout=60)  # started again
    # twice within two minutes: still "crashing" once it runs again
    eventually(lambda: _cell(page, "hello", "state") == "crashing", 10)
    assert "exited with code 137" in _cell(page, "hello", "error")
    assert not [e for e in dev.events if e["event"] == "crashed" and e["service"] != "hello"]
