"""One-file sync with the dashboard open in a browser vs without the dashboard.

    .venv/bin/python bench/bench_ui.py [--edits N] [--rounds R]

The sink hands events to the dashboard's thread without waiting (devloop/ui/hub.py), so a
page that follows every event must not slow a sync down. Each round runs the real
`devloop dev --output json` twice on the same project: with `--no-ui`, then with the
dashboard served and a headless Chromium page (Playwright, Debian's /usr/bin/chromium)
open on it for the whole series. Per edit: the `sync` event's ms and write → visible in the
container (as bench_e2e.py), edits `--pause` apart (default 0.25 s: a person's pace, and
the page draws each edit in between). Target: p50 with the page open within 1 ms of p50
without.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import docker
from bench_e2e import WARMUP, Series, _edit
from common import Stats, Table, ms, verdict
from devrun import DevRun, Poller, bench_project, free_port

TARGET_DELTA = 1.0  # ms, p50 with the page open minus p50 without
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


@contextlib.contextmanager
def page_on(url: str) -> Iterator[Any]:
    """A headless Chromium page on `url` that follows the event stream live."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="devloop-bench-chromium-")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                profile, executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page()
                page.goto(url)
                page.wait_for_selector('#services tr[data-service="web"] td.state.ready')
                yield page
            finally:
                browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def series(run: DevRun, edits: int, into: Series, pause: float) -> None:
    api, cid = run.client.api, str(run.container().id)
    rels = ["site/index.html"]
    poller = Poller(api, cid, ["/www/index.html"])
    try:
        for i in range(WARMUP + edits):
            _edit(run, poller, rels, f"e{i}", into if i >= WARMUP else Series(1))
            time.sleep(pause)
    finally:
        poller.close()


def one_round(
    client: docker.DockerClient, edits: int, closed: Series, open_: Series, pause: float
) -> int:
    """Both series on one project; how many events the page had shown at the end."""
    with bench_project(client, "ui") as proj:
        with DevRun(client, proj, args=("--no-ui",)) as run:
            series(run, edits, closed, pause)
        port = free_port()
        with DevRun(client, proj, args=("--ui-port", str(port))) as run:
            url = run.wait("dashboard", 0)["url"]
            with page_on(url) as page:
                series(run, edits, open_, pause)
                return int(page.locator("#logs .line").count())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--pause",
        type=float,
        default=0.25,
        help="seconds between edits (a person saves a few times a second at most; the page "
        "draws each edit in between)",
    )
    args = parser.parse_args()
    client = docker.from_env(timeout=300)
    closed, open_ = Series(1), Series(1)
    load = os.getloadavg()
    shown = 0
    try:
        for _ in range(args.rounds):
            shown = one_round(client, args.edits, closed, open_, args.pause)
    finally:
        client.close()
    t = Table(
        "Dashboard open vs closed: one-file sync (Docker, real `devloop dev --output json`)",
        ["dashboard", "measure", "p50 ms", "p95 ms", "max ms", "n"],
    )
    for name, s in (("closed (--no-ui)", closed), ("open in Chromium", open_)):
        t.add(name, "sync event ms", *_cells(s.sync_ms))
        t.add(name, "write → visible", *_cells(s.visible_ms))
    for what, a, b in (
        ("sync event ms", closed.sync_ms, open_.sync_ms),
        ("write → visible", closed.visible_ms, open_.visible_ms),
    ):
        delta = Stats.of(b).p50 - Stats.of(a).p50
        t.notes.append(
            f"{what}: p50 open - closed = {delta:+.2f} ms "
            f"({verdict(delta, TARGET_DELTA)}: the page may add at most {TARGET_DELTA:.0f} ms)"
        )
    t.notes.append(f"the page showed {shown} lines at the end of the last round")
    hand = sink_cost()
    t.notes.append(
        f"the sink's hand-over to the dashboard (Hub.__call__, its loop running): "
        f"p50 {hand.p50 * 1000:.1f} µs, p95 {hand.p95 * 1000:.1f} µs per event "
        f"(n={hand.n}); everything else happens on the dashboard's thread"
    )
    print(t.text())
    print(f"load average before {load}, after {os.getloadavg()} (a shared machine)")


def sink_cost(n: int = 20_000) -> Stats:
    """What one event costs the thread that emits it, with the dashboard's loop running."""
    import asyncio
    import threading

    from devloop.model.events import SyncDone
    from devloop.ui.hub import Hub

    hub = Hub()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        hub.attach(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait()
    event = SyncDone("web", "c0", 1, 0, 10, 5.0, paths=["/www/index.html"])
    costs = []
    for i in range(n):
        start = time.perf_counter()
        hub(event)
        costs.append((time.perf_counter() - start) * 1000)
        if i % 3 == 2:
            time.sleep(0.0005)  # bursts of three, as an edit's changes, sync, restart
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    return Stats.of(costs)


def _cells(values: list[float]) -> tuple[str, str, str, int]:
    st = Stats.of(values)
    return ms(st.p50), ms(st.p95), ms(st.max), st.n


if __name__ == "__main__":
    main()
