"""The live terminal view: a status block that stays at the bottom of the terminal (a line per
service, builds under way, errors pinned until resolved, the keys), with logs and events
scrolling above it, so every line stays in the terminal's scrollback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from devloop.model.events import BuildProgress, BuildStep, Event, Log, Paused, Pending
from devloop.ui.board import Board, ServiceStatus

KEYS_LINE = "r rebuild · R restart · t trigger · p pause · l logs · o open · ? help · q quit"
_STATE_STYLE = {
    "starting": ("○", "dim"),
    "building": ("◐", "yellow"),
    "built": ("◑", "cyan"),
    "deployed": ("◑", "cyan"),
    "ready": ("●", "green"),
    "failed": ("✗", "red"),
}


class LiveView:
    """An event sink for a terminal. `lines` formats an event as a scrolling line (or None);
    `colour` gives a service its colour."""

    def __init__(
        self,
        console: Console,
        lines: Callable[[Event], str | None],
        colour: Callable[[str], str],
        *,
        keys: bool = False,
    ) -> None:
        self._console = console
        self._lines = lines
        self._colour = colour
        self._lock = threading.Lock()
        self.board = Board()
        self._prompt = ""
        self._logs: str | None = None  # show only this service's logs
        self._keys = keys
        self._live = Live(
            self,  # rendered through __rich__ at every refresh (elapsed times move)
            console=console,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._started = False

    # -- the sink ----------------------------------------------------------

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.board.apply(event)
            if isinstance(event, Log) and self._logs not in (None, event.service):
                return
        if isinstance(event, BuildStep | BuildProgress) or (
            isinstance(event, Pending | Paused) and event.files
        ):
            return  # the status block shows them; the scrollback keeps the outcome
        text = self._lines(event)
        if text is None:
            return
        self.start()
        # never while holding our lock: rich's refresh thread takes its lock, then ours
        self._console.print(text, markup=True, highlight=False)

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._live.start()

    def close(self) -> None:
        if self._started:
            self._live.stop()
            self._started = False

    # -- what the keys need -------------------------------------------------

    def say(self, text: str) -> None:
        """A line above the status block (help, a message about a key)."""
        self.start()
        self._console.print(text, markup=False, highlight=False)

    def prompt(self, text: str) -> None:
        """A question in the status block ('' to clear it)."""
        with self._lock:
            self._prompt = text
        if self._started:
            self._live.refresh()

    def filter_logs(self, service: str | None) -> None:
        with self._lock:
            self._logs = service

    def urls(self) -> Mapping[str, list[str]]:
        with self._lock:
            return {n: list(s.urls) for n, s in self.board.services.items() if s.urls}

    # -- rendering ------------------------------------------------------------

    def __rich__(self) -> RenderableType:
        with self._lock:
            return self._render(time.monotonic())

    def _render(self, now: float) -> RenderableType:
        widest = max((len(n) for n in self.board.services), default=0)
        rows = [self._row(s, widest, now) for s in self.board.services.values()]
        parts: list[RenderableType] = [Text("─" * 8 + " " + self._header(), style="dim"), *rows]
        for service, message in self.board.errors.items():
            head, *more = message.splitlines() or [""]
            extra = f" (+{len(more)} lines above)" if more else ""
            who = f"[{self._colour(service)}]{escape(service)}[/] " if service else ""
            parts.append(Text.from_markup(f"[red]✗[/] {who}[red]{escape(head)}[/]{extra}"))
        if self._prompt:
            parts.append(Text(self._prompt, style="bold"))
        elif self._keys:
            parts.append(Text(KEYS_LINE, style="dim"))
        return Group(*parts)

    def _header(self) -> str:
        bits = ["devloop", self.board.watching]
        if self.board.paused is not None:
            bits.append(f"PAUSED, {self.board.paused} changed file(s) kept")
        if self._logs:
            bits.append(f"logs of {self._logs} only (l to change)")
        return " · ".join(b for b in bits if b)

    def _row(self, s: ServiceStatus, widest: int, now: float) -> Text:
        """One line, cut at the terminal's width: name, state, then the build under way, or
        tag, last sync, changes waiting, restarts, URLs."""
        mark, style = _STATE_STYLE.get(s.state, ("?", ""))
        row = Text(no_wrap=True, overflow="ellipsis")
        row.append(s.name.ljust(widest), style=self._colour(s.name))
        row.append(f"  {mark} {s.state:<9}", style=style)
        if s.build is not None:
            row.append(f"  {s.build.line(now)}")
            return row
        row.append(f"  {s.tag[:12]}", style="dim")
        if s.sync:
            row.append(f"  {s.sync}")
        if s.pending:
            row.append(f"  {s.pending} change(s) wait (t)", style="yellow")
        if s.restarts:
            row.append(f"  restarts {s.restarts}", style="dim")
        if s.urls:
            row.append("  " + "  ".join(s.urls))
        return row
