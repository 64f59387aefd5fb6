"""Which files a burst wrote twice within a watcher's throttle, and when they are written again."""

from __future__ import annotations

import pytest

from devloop.sync.settle import Settle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_file_written_twice_within_the_window_is_due_once_it_is_quiet() -> None:
    clock = Clock()
    settle = Settle(window=0.1, quiet=0.1, clock=clock)
    settle.wrote("web", {"/app/src/main.js": "/p/src/main.js", "/app/a.js": "/p/a.js"})
    assert settle.wait(5.0) == 5.0  # one write each: nothing to do
    clock.now += 0.002
    settle.wrote("web", {"/app/src/main.js": "/p/src/main.js"})
    assert settle.wait(5.0) == pytest.approx(0.1)
    clock.now += 0.05
    assert settle.due() == {}
    clock.now += 0.051
    assert settle.due() == {"web": {"/app/src/main.js": "/p/src/main.js"}}
    assert settle.due() == {}  # once
    assert settle.wait(5.0) == 5.0


def test_writes_further_apart_than_the_window_need_nothing_more() -> None:
    clock = Clock()
    settle = Settle(window=0.1, quiet=0.1, clock=clock)
    settle.wrote("web", {"/app/x": "/p/x"})
    clock.now += 0.2
    settle.wrote("web", {"/app/x": "/p/x"})
    clock.now += 1
    assert settle.due() == {}


def test_each_write_in_a_burst_pushes_the_rewrite_later() -> None:
    clock = Clock()
    settle = Settle(window=0.1, quiet=0.1, clock=clock)
    for _ in range(5):
        settle.wrote("web", {"/app/x": "/p/x"})
        clock.now += 0.03
    assert settle.due() == {}  # the last write was 30 ms ago
    clock.now += 0.081
    assert settle.due() == {"web": {"/app/x": "/p/x"}}


def test_a_deleted_file_or_a_new_image_cancels_the_rewrite() -> None:
    clock = Clock()
    settle = Settle(window=0.1, quiet=0.1, clock=clock)
    for _ in range(2):
        settle.wrote("web", {"/app/x": "/p/x"})
        settle.wrote("api", {"/srv/y": "/q/y"})
    settle.wrote("web", {}, ["/app/x"])
    settle.forget("api")
    clock.now += 1
    assert settle.due() == {}


def test_its_own_rewrite_does_not_ask_for_another() -> None:
    clock = Clock()
    settle = Settle(window=0.1, quiet=0.1, clock=clock)
    settle.wrote("web", {"/app/x": "/p/x"})
    settle.wrote("web", {"/app/x": "/p/x"})
    clock.now += 0.11
    assert settle.due()
    settle.wrote("web", {"/app/x": "/p/x"}, again=True)
    clock.now += 1
    assert settle.due() == {}
