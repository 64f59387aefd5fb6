"""The dashboard server alone: its port, and a stop that does not wait for open pages."""

from __future__ import annotations

import http.client
import socket
import time

import pytest

from devloop.errors import DevloopError
from devloop.model.events import Info
from devloop.ui.hub import Hub
from devloop.ui.server import DEFAULT_PORT, Dashboard
from tests.devproc import free_port


def test_a_port_in_use_is_an_error_that_names_the_options() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DevloopError, match=rf"127\.0\.0\.1:{port} is in use.*--no-ui"):
            Dashboard(Hub(), port)


def test_without_a_port_it_takes_the_first_free_one_from_10350_on_loopback() -> None:
    board = Dashboard(Hub())
    try:
        assert board.url == f"http://127.0.0.1:{board.port}/"
        assert board._sock.getsockname()[0] == "127.0.0.1"
        taken = board.port
    finally:
        board.stop()
    assert DEFAULT_PORT <= taken < DEFAULT_PORT + 20 or taken > 1024


def test_stopping_ends_the_open_event_streams_at_once() -> None:
    hub = Hub()
    board = Dashboard(hub, free_port())
    board.start()
    hub(Info("hello"))
    conn = http.client.HTTPConnection("127.0.0.1", board.port, timeout=10)
    try:
        conn.request("GET", "/events", headers={"Host": f"localhost:{board.port}"})
        answer = conn.getresponse()
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        first = answer.read1(65536)
        assert first.startswith(b"id: 1\r\ndata: {") and b'"message": "hello"' in first
        start = time.monotonic()
        board.stop()
        assert time.monotonic() - start < 3
        rest = answer.read()  # the stream ended: no hang until a timeout
        assert b"hello" not in rest
    finally:
        conn.close()
