"""The dashboard's event hub: a sender never waits, pages get every event in order, and a page
that reconnects catches up from a bounded buffer."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from devloop.model.events import Info, Log, SyncDone
from devloop.ui.hub import Hub


def _sync(n: int) -> SyncDone:
    return SyncDone("web", "c0", 1, 0, 10, float(n))


def test_events_sent_before_the_loop_runs_are_kept_for_the_first_page() -> None:
    hub = Hub()
    hub(Info("first"))  # no loop yet: the first build's events come before the server runs

    async def main() -> list[dict[str, object]]:
        hub.attach(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return [json.loads(data) for _, data in hub.since(0)]

    (only,) = asyncio.run(main())
    assert (only["event"], only["message"], only["seq"]) == ("info", "first", 1)


def test_pages_get_every_event_from_other_threads_in_order() -> None:
    hub = Hub()

    async def main() -> list[int]:
        hub.attach(asyncio.get_running_loop())
        page = hub.subscribe()

        def send() -> None:
            for n in range(500):
                hub(_sync(n))

        threading.Thread(target=send).start()
        got = []
        while len(got) < 500:
            _, data = await asyncio.wait_for(page.get(), 10)
            got.append(int(json.loads(data)["ms"]))
        return got

    assert asyncio.run(main()) == list(range(500))


def test_a_sender_never_waits_even_when_no_page_reads() -> None:
    hub = Hub(keep_lines=100, keep_events=100)

    async def main() -> float:
        hub.attach(asyncio.get_running_loop())
        hub.subscribe()  # a page that never reads: it is dropped when its backlog is full
        start = time.perf_counter()
        for n in range(20_000):
            hub(_sync(n))
        return time.perf_counter() - start

    assert asyncio.run(main()) < 5.0  # appends only: no lock, no I/O, no JSON here


def test_the_replay_buffer_is_bounded_and_keeps_lines_and_events_apart() -> None:
    hub = Hub(keep_lines=3, keep_events=2)

    async def main() -> list[tuple[int, str]]:
        hub.attach(asyncio.get_running_loop())
        hub(Info("deployed"))
        for n in range(10):
            hub(Log("web", "c0", f"line {n}"))
        hub(Info("ready"))
        await asyncio.sleep(0)
        return list(hub.since(0))

    kept = asyncio.run(main())
    texts = [json.loads(d).get("line") or json.loads(d).get("message") for _, d in kept]
    # a flood of log lines does not push the session's own events out
    assert texts == ["deployed", "line 7", "line 8", "line 9", "ready"]
    assert [s for s, _ in kept] == sorted(s for s, _ in kept)
    assert [json.loads(d)["seq"] for _, d in asyncio.run(_after(hub, 11))] == [12]


async def _after(hub: Hub, seq: int) -> list[tuple[int, str]]:
    return list(hub.since(seq))
