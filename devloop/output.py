"""The sinks that show events: a terminal view for people, or one JSON object per line."""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import fields
from typing import IO, Any

from devloop.model.events import (
    VERSION,
    BuildDone,
    BuildProgress,
    BuildSkipped,
    BuildStarted,
    BuildStep,
    Changes,
    Crashed,
    Dashboard,
    Deployed,
    Emit,
    Error,
    Event,
    Info,
    InterceptEnded,
    InterceptRelayed,
    InterceptStarted,
    Log,
    Paused,
    Pending,
    Ready,
    Requested,
    Restarted,
    Resumed,
    SyncDone,
    WarningEvent,
    Watching,
    event_types,
)


def events_schema() -> dict[str, Any]:
    """The JSON Schema of every `--output json` line, built from the event records themselves."""
    from pydantic import TypeAdapter

    defs: dict[str, Any] = {}
    for cls in event_types():
        if cls.open:
            body: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        else:
            body = TypeAdapter(cls).json_schema()
            body["additionalProperties"] = False
        body.pop("title", None)
        body["description"] = (cls.__doc__ or "").strip().splitlines()[0]
        body["properties"] = {
            "v": {"const": VERSION},
            "event": {"const": cls.kind},
            "ts": {"type": "number", "description": "Unix time in seconds"},
            **body["properties"],
        }
        body["required"] = ["v", "event", "ts", *body.get("required", [])]
        defs[cls.kind] = body
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"devloop --output json events, version {VERSION}",
        "description": "One JSON object per line; `v` is the stream version, `event` the type.",
        "oneOf": [{"$ref": f"#/$defs/{kind}"} for kind in defs],
        "$defs": defs,
    }


def tee(*sinks: Emit) -> Emit:
    """One sink that hands each event to every one of `sinks`, in order."""

    def emit(event: Event) -> None:
        for s in sinks:
            s(event)

    return emit


def _size(n: int) -> str:
    return f"{n} B" if n < 10_000 else f"{n / 1024:.0f} KiB" if n < 10 << 20 else f"{n >> 20} MiB"


def sink(output: str, *, live: bool = False, keys: bool = False) -> Emit:
    """The sink `--output` asks for, on stdout. `live`: the live view (`dev`) where stdout is a
    terminal that takes it (not NO_COLOR, not TERM=dumb); `keys`: it lists the keys."""
    if output == "json":
        return JsonSink(sys.stdout)
    text = TextSink(sys.stdout)
    if live and live_terminal(sys.stdout):
        from rich.console import Console

        from devloop.ui.live import LiveView

        # no soft wrap: the live block is redrawn in place, so rich must know every line's height
        console = Console(file=sys.stdout, highlight=False)
        return LiveView(console, text.format, text.colour, keys=keys)
    return text


def live_terminal(stream: IO[str]) -> bool:
    """A terminal that can redraw a status block: a TTY, colours allowed, not a dumb one."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM", "") in ("dumb", ""):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class JsonSink:
    """One JSON object per line; thread-safe; flushed per event so readers see it at once."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = json.dumps(event.payload(), default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class TextSink:
    """The terminal view: coloured service prefixes, one line per event."""

    _COLOURS = (
        "cyan",
        "magenta",
        "green",
        "yellow",
        "blue",
        "bright_red",
        "bright_cyan",
        "bright_magenta",
    )

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console

        self.console = Console(file=stream or sys.stderr, highlight=False, soft_wrap=True)
        self._lock = threading.Lock()
        self._changed: Changes | None = None
        self._logs: str | None = None  # only this service's logs (key l)
        self._urls: dict[str, list[str]] = {}

    def _cause(self) -> str:
        c = self._changed
        if c is None:
            return ""  # the first build: nothing changed, there was no image yet
        from rich.markup import escape

        more = f" and {c.files - 3} more" if c.files > 3 else ""
        return f" [dim](changed: {escape(', '.join(c.paths[:3]))}{more})[/]"

    def colour(self, service: str) -> str:
        # stable across runs: derived from the name, not from arrival order
        return self._COLOURS[sum(service.encode()) % len(self._COLOURS)]

    def __call__(self, event: Event) -> None:
        if isinstance(event, Ready) and event.urls:
            self._urls[event.service] = list(event.urls)
        if isinstance(event, Log) and self._logs not in (None, event.service):
            return
        text = self.format(event)
        if text is None:
            return
        with self._lock:
            self.console.print(text, markup=True, highlight=False)

    # what the keys need (see ui.keys.View), as plain lines

    def say(self, text: str) -> None:
        with self._lock:
            self.console.print(text, markup=False, highlight=False)

    def prompt(self, text: str) -> None:
        if text:
            self.say(text)

    def filter_logs(self, service: str | None) -> None:
        self._logs = service

    def urls(self) -> dict[str, list[str]]:
        return dict(self._urls)

    def _tag(self, service: str | None) -> str:
        return f"[{self.colour(service)}]\\[{service}][/] " if service else ""

    def format(self, e: Event) -> str | None:
        """The event as one line of console markup; None for events said elsewhere."""
        from rich.markup import escape

        svc = getattr(e, "service", None)
        tag = self._tag(svc)
        match e:
            case Log():
                return f"{tag}{escape(e.line)}"
            case Watching():
                return f"[dim]watching {len(e.roots)} roots, {e.files} files ({e.ms:.0f} ms)[/]"
            case Changes():
                self._changed = e  # said with the build it causes, if any (a sync names its own)
                return None
            case SyncDone():
                what = "replayed" if e.replay else "synced"
                total = e.files + e.deleted
                names = ", ".join(e.paths[:3])
                more = f" and {total - 3} more" if total > 3 else ""
                deleted = f", {e.deleted} deleted" if e.deleted else ""
                return (
                    f"{tag}[green]{what}[/] {escape(names)}{more} ({_size(e.bytes)}{deleted}) "
                    f"in {e.ms:.0f} ms"
                )
            case BuildStarted():
                return f"{tag}building {escape(e.image)}{self._cause()}"
            case BuildStep():
                return None  # the steps are said by BuildProgress; a failure quotes the last lines
            case BuildProgress():
                cached = f", {e.cached} cached" if e.cached else ""
                return f"{tag}[dim]step {e.step}/{e.steps} {escape(e.text)}{cached}[/]"
            case BuildSkipped():
                return f"{tag}[dim]build skipped: {escape(e.image)} {escape(e.reason)}[/]"
            case BuildDone():
                return f"{tag}built {escape(e.image)} in {e.ms / 1000:.1f} s"
            case Deployed():
                return f"{tag}deployed {escape(e.image)}"
            case Ready():
                urls = "  " + "  ".join(e.urls) if e.urls else ""
                after = f" ({e.ms / 1000:.2f} s after the save)" if e.ms is not None else ""
                return f"{tag}[bold green]ready[/]{urls}{after}"
            case Crashed():
                code = f"exited with code {e.exit_code}" if e.exit_code is not None else "exited"
                return (
                    f"{tag}[bold red]crashed[/] {escape(e.container)} {code} "
                    f"({e.restarts} time(s) so far); started again"
                )
            case Restarted():
                return f"{tag}restarted process in {escape(e.container)}"
            case Dashboard():
                return f"[bold]dashboard[/]  {escape(e.url)}"
            case Requested():
                if e.command == "rebuild":
                    self._changed = None  # what it builds was asked for, not caused by an edit
                every = (
                    " (every service)" if not svc and e.command in ("rebuild", "restart") else ""
                )
                return f"{tag}[bold]{e.command}[/] requested{every}"
            case Pending():
                if not e.files:
                    return None  # the trigger's work says what happens next
                names = ", ".join(e.paths[:3]) + (f" and {e.files - 3} more" if e.files > 3 else "")
                return f"{tag}[yellow]{e.files} change(s) wait[/] for a trigger: {escape(names)}"
            case Paused():
                if e.files:
                    return f"[dim]paused: {e.files} changed file(s) kept until resume[/]"
                return "[yellow]paused[/]: edits are kept until resume"
            case Resumed():
                return f"resumed: {e.files} changed file(s) kept while paused"
            case InterceptStarted():
                who = f"requests with {e.header} (HTTP/1.x)" if e.header else "all its traffic"
                return (
                    f"{tag}[bold magenta]local[/] pid {e.pid}: {escape(e.command)}  "
                    f"receives {escape(who)} on {', '.join(map(str, e.ports))}"
                )
            case InterceptRelayed():
                return None  # one per connection: the JSON stream has them; the end says how many
            case InterceptEnded():
                return (
                    f"{tag}intercept ended: {e.relayed} connection(s) relayed"
                    + (f", {e.failed} failed" if e.failed else "")
                    + "; the original serves again"
                )
            case Info():
                return f"{tag}{escape(e.message)}"
            case WarningEvent():
                return f"{tag}[yellow]warning:[/] {escape(e.message)}"
            case Error():
                return f"{tag}[red]error:[/] {escape(e.message)}"
        return f"{tag}{e.kind} " + " ".join(f"{f.name}={getattr(e, f.name)}" for f in fields(e))
