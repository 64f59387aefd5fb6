"""The sinks that show events: a terminal view for people, or one JSON object per line."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import fields
from typing import IO, Any

from devloop.model.events import (
    VERSION,
    BuildDone,
    BuildSkipped,
    BuildStarted,
    BuildStep,
    Changes,
    Deployed,
    Emit,
    Error,
    Event,
    Info,
    InterceptEnded,
    InterceptRelayed,
    InterceptStarted,
    Log,
    Ready,
    Restarted,
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


def _size(n: int) -> str:
    return f"{n} B" if n < 10_000 else f"{n / 1024:.0f} KiB" if n < 10 << 20 else f"{n >> 20} MiB"


def sink(output: str) -> Emit:
    """The sink `--output` asks for, on stdout."""
    return JsonSink(sys.stdout) if output == "json" else TextSink(sys.stdout)


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

        self._console = Console(file=stream or sys.stderr, highlight=False, soft_wrap=True)
        self._lock = threading.Lock()
        self._changed: Changes | None = None

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
        text = self._format(event)
        if text is None:
            return
        with self._lock:
            self._console.print(text, markup=True, highlight=False)

    def _tag(self, service: str | None) -> str:
        return f"[{self.colour(service)}]\\[{service}][/] " if service else ""

    def _format(self, e: Event) -> str | None:
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
                return f"{tag}[dim]{escape(e.line)}[/]"
            case BuildSkipped():
                return f"{tag}[dim]build skipped: {escape(e.image)} {escape(e.reason)}[/]"
            case BuildDone():
                return f"{tag}built {escape(e.image)} in {e.ms / 1000:.1f} s"
            case Deployed():
                return f"{tag}deployed {escape(e.image)}"
            case Ready():
                urls = "  " + "  ".join(e.urls) if e.urls else ""
                return f"{tag}[bold green]ready[/]{urls}"
            case Restarted():
                return f"{tag}restarted process in {escape(e.container)}"
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
