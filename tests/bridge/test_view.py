"""What a person reads about an intercept in the terminal view."""

from __future__ import annotations

import io

from devloop.model.events import InterceptEnded, InterceptRelayed, InterceptStarted
from devloop.output import TextSink


def _view(*events: object) -> str:
    out = io.StringIO()
    view = TextSink(out)
    for e in events:
        view(e)  # type: ignore[arg-type]
    return out.getvalue()


def test_the_intercept_names_the_local_process_and_what_it_receives() -> None:
    started = InterceptStarted("api", "python -m app", 4242, [8000], "x-dev=alice", {}, False)
    assert _view(started) == (
        "[api] local pid 4242: python -m app  receives requests with x-dev=alice (HTTP/1.x) "
        "on 8000\n"
    )
    everything = InterceptStarted("api", "python -m app", 4242, [8000, 9000], None, {}, True)
    assert "receives all its traffic on 8000, 9000" in _view(everything)


def test_relayed_connections_are_counted_at_the_end_not_one_line_each() -> None:
    assert _view(InterceptRelayed("api", 8000, 1), InterceptRelayed("api", 8000, 2)) == ""
    assert _view(InterceptEnded("api", 2, 1, None)) == (
        "[api] intercept ended: 2 connection(s) relayed, 1 failed; the original serves again\n"
    )
