"""The live view's status block from a stream of events (rendered to a 120-column console), and
what each key does (a recording session: the key map is pure logic)."""

from __future__ import annotations

import io
from collections.abc import Mapping

import pytest
from rich.console import Console

from devloop.loop.steer import RequestError
from devloop.model.events import (
    BuildDone,
    BuildProgress,
    BuildStarted,
    Deployed,
    Error,
    Event,
    Log,
    Paused,
    Pending,
    Ready,
    Restarted,
    SyncDone,
)
from devloop.output import TextSink
from devloop.ui.keys import Keys
from devloop.ui.live import LiveView


def view() -> tuple[LiveView, io.StringIO]:
    out = io.StringIO()
    text = TextSink(out)
    console = Console(file=out, width=120, color_system=None, force_terminal=False)
    return LiveView(console, text.format, text.colour, keys=True), out


def block(v: LiveView) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(v.__rich__())
    return [line.rstrip() for line in out.getvalue().splitlines()]


def feed(v: LiveView, *events: Event) -> None:
    for e in events:
        v(e)


def test_a_line_per_service_with_tag_sync_restarts_and_url() -> None:
    v, _ = view()
    feed(
        v,
        BuildDone("web", "shop/web:3f2a9c1d0b7e4a55", 1200.0),
        Deployed("web", "shop/web:3f2a9c1d0b7e4a55", 2),
        Ready("web", ["http://127.0.0.1:8080"]),
        SyncDone("web", "shop-web-0", 2, 0, 40, 14.2, paths=["/www/index.html", "/www/a.css"]),
        Restarted("web", "shop-web-0"),
        BuildStarted("api", "shop/api:77aa"),
        BuildProgress("api", 3, 5, 2, "RUN pip install -r requirements.txt"),
    )
    lines = block(v)
    assert lines[1].split() == (
        [
            "web",
            "●",
            "ready",
            "3f2a9c1d0b7e",
            "synced",
            "index.html,",
            "a.css",
            "14",
            "ms",
            "restarts",
            "1",
            "http://127.0.0.1:8080",
        ]
    )
    assert lines[2].startswith("api  ◐ building")
    assert "━━━━━━────  step 3/5 RUN pip install -r requirements.txt" in lines[2]
    assert lines[2].endswith(", 2 cached") and " s, 2 cached" in lines[2]
    assert lines[-1].startswith("r rebuild · R restart · t trigger · p pause")


def test_errors_stay_pinned_until_the_service_recovers() -> None:
    v, _ = view()
    feed(v, Ready("web", []), Error("sync to shop-web-0 failed: gone\nmore", "web"))
    assert any(
        "✗ web sync to shop-web-0 failed: gone (+1 lines above)" in line for line in block(v)
    )
    feed(v, Log("web", "shop-web-0", "noise"))
    assert any("✗ web" in line for line in block(v))  # still there
    feed(v, SyncDone("web", "shop-web-0", 1, 0, 4, 9.0, paths=["/www/index.html"]))
    assert not any("✗" in line for line in block(v))
    # a failed build names no service: pinned for the session until a build or deploy succeeds
    feed(v, BuildStarted("web", "shop/web:1"), Error("build failed; the running version stays"))
    lines = block(v)
    assert any(line.startswith("✗ build failed") for line in lines)
    assert lines[1].split()[:3] == ["web", "✗", "failed"]
    feed(v, BuildDone("web", "shop/web:2", 900.0))
    assert not any("✗ build failed" in line for line in block(v))


def test_pending_changes_paused_and_the_log_filter() -> None:
    v, out = view()
    feed(v, Ready("web", []), Ready("api", []), Pending("web", 3, ["a", "b", "c"]), Paused(2))
    lines = block(v)
    assert "PAUSED, 2 changed file(s) kept" in lines[0]
    assert "3 change(s) wait (t)" in lines[1]
    v.filter_logs("api")
    feed(v, Log("web", "c", "from web"), Log("api", "c", "from api"))
    v.close()
    printed = out.getvalue()
    assert "from api" in printed and "from web" not in printed
    assert "logs of api only" in block(v)[0]


class Recorder:
    names = ("base", "web", "api")
    paused = False

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []

    def request(self, command: str, service: str | None = None) -> None:
        if service == "nope":
            raise RequestError("unknown service 'nope'")
        self.requests.append((command, service))


class Screen:
    def __init__(self) -> None:
        self.said: list[str] = []
        self.asked: list[str] = []
        self.logs: str | None = "unset"

    def say(self, text: str) -> None:
        self.said.append(text)

    def prompt(self, text: str) -> None:
        self.asked.append(text)

    def filter_logs(self, service: str | None) -> None:
        self.logs = service

    def urls(self) -> Mapping[str, list[str]]:
        return {"web": ["http://127.0.0.1:8080"]}


def test_keys_ask_which_service_when_there_are_several() -> None:
    session, screen, quits, opened = Recorder(), Screen(), [], []
    keys = Keys(session, screen, quit=lambda: quits.append(1), opener=opened.append)
    for key in "r2":
        keys.press(key)
    assert screen.asked[0] == "rebuild which? [1] base  [2] web  [3] api  [a] all  (Esc: cancel)"
    for key in "Ratppr\x1b":
        keys.press(key)
    assert session.requests == [
        ("rebuild", "web"),
        ("restart", None),
        ("trigger", None),
        ("pause", None),
        ("resume", None),
    ]
    keys.press("l")
    keys.press("3")
    assert screen.logs == "api"
    keys.press("o")  # one service has a URL: no question
    assert opened == ["http://127.0.0.1:8080"]
    keys.press("?")
    assert "q  quit, as Ctrl-C" in screen.said[-1]
    keys.press("q")
    assert quits == [1]


@pytest.mark.parametrize("key", ["x", "1", " "])
def test_other_keys_do_nothing(key: str) -> None:
    session, screen = Recorder(), Screen()
    Keys(session, screen, quit=lambda: None).press(key)
    assert session.requests == [] and screen.said == []
