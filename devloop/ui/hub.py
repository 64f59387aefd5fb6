"""Events from the session's threads to the dashboard's clients, without ever making a sender wait.

The sink (`Hub.__call__`) only appends to a deque and, at most once per burst, asks the
dashboard's event loop to take them a moment later: no lock, no JSON on the sync path, and
the dashboard's thread does its work once the edit's threads are done with theirs. The loop
numbers each event, keeps the last ones for pages that (re)connect, and hands them on to every
open page. A page that falls too far behind is dropped; it reconnects and catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Iterator

from devloop.model.events import BuildStep, Event, Log

KEEP_LINES = 5000
"""Log and build lines kept for a page that connects (the rest of the stream: KEEP_EVENTS)."""
KEEP_EVENTS = 2000
PAGE_BACKLOG = 10_000
"""Events waiting for one page before it is dropped (it then reconnects and catches up)."""

PENDING = 100_000
"""Events handed over but not yet taken by the dashboard's loop (it is not running yet, or
stalled): the oldest beyond this are dropped rather than held."""

TAKE_DELAY = 0.05
"""Seconds between the first event of a burst and the dashboard's loop taking the burst."""

Frame = tuple[int, str]  # (sequence number, the event as JSON)
_END: Frame = (0, "")


class Hub:
    """The dashboard's event sink and its bounded replay buffer."""

    def __init__(
        self,
        keep_lines: int = KEEP_LINES,
        keep_events: int = KEEP_EVENTS,
        delay: float = TAKE_DELAY,
    ) -> None:
        self.delay = delay
        # events that came before the loop runs are kept too (the first build's), up to a bound
        self._pending: deque[tuple[float, Event]] = deque(maxlen=PENDING)
        self._lines: deque[Frame] = deque(maxlen=keep_lines)
        self._events: deque[Frame] = deque(maxlen=keep_events)
        self._seq = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._pages: set[asyncio.Queue[Frame]] = set()

    def __call__(self, event: Event) -> None:
        """The sink: called from any thread; never blocks."""
        self._pending.append((time.time(), event))
        loop = self._loop
        if loop is not None and not self._scheduled:
            self._scheduled = True
            try:
                loop.call_soon_threadsafe(self._later)
            except RuntimeError:  # the dashboard has stopped
                self._scheduled = False

    def _later(self) -> None:
        # The burst of events an edit makes (changes, sync, restart) is taken as one, a moment
        # later: the dashboard's thread then works when the edit's own threads are done.
        asyncio.get_running_loop().call_later(self.delay, self._take)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run on `loop` (the dashboard's thread), starting with what came before."""
        self._loop = loop
        self._scheduled = True
        loop.call_soon(self._take)

    def close(self) -> None:
        """End every page's stream (from any thread)."""
        loop, self._loop = self._loop, None
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # it had stopped already
                loop.call_soon_threadsafe(self._end)

    def _end(self) -> None:
        for page in self._pages:
            page.put_nowait(_END)

    def _take(self) -> None:
        self._scheduled = False  # first: an event appended from here on schedules another take
        while self._pending:
            ts, event = self._pending.popleft()
            payload = {**event.payload(), "ts": round(ts, 3)}
            seq = next(self._seq)
            frame = (seq, json.dumps({"seq": seq, **payload}, default=str))
            (self._lines if isinstance(event, Log | BuildStep) else self._events).append(frame)
            for page in list(self._pages):
                try:
                    page.put_nowait(frame)
                except asyncio.QueueFull:
                    self._pages.discard(page)
                    page.get_nowait()
                    page.put_nowait(_END)

    def subscribe(self) -> asyncio.Queue[Frame]:
        page: asyncio.Queue[Frame] = asyncio.Queue(PAGE_BACKLOG)
        self._pages.add(page)
        return page

    def unsubscribe(self, page: asyncio.Queue[Frame]) -> None:
        self._pages.discard(page)

    def since(self, seq: int) -> Iterator[Frame]:
        """The kept events after `seq`, in order (a page that reconnects sends its last one)."""
        kept = sorted(itertools.chain(self._lines, self._events))
        return (f for f in kept if f[0] > seq)

    @staticmethod
    def ended(frame: Frame) -> bool:
        return frame is _END
