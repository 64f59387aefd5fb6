"""Typed events, and the sinks that show them: a terminal view or one JSON object per line."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import IO, Any, ClassVar, Protocol


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"

    def payload(self) -> dict[str, Any]:
        return {"event": self.kind, "ts": round(time.time(), 3), **asdict(self)}


@dataclass(frozen=True)
class Watching(Event):
    kind: ClassVar[str] = "watching"
    roots: list[str]
    files: int
    ms: float


@dataclass(frozen=True)
class Changes(Event):
    kind: ClassVar[str] = "changes"
    files: int
    paths: list[str]  # the first few, relative to the project


@dataclass(frozen=True)
class SyncDone(Event):
    kind: ClassVar[str] = "sync"
    service: str
    container: str
    files: int
    deleted: int
    bytes: int
    ms: float  # first change seen → acknowledgement from the container
    replay: bool = False


@dataclass(frozen=True)
class BuildStarted(Event):
    kind: ClassVar[str] = "build_started"
    service: str
    image: str


@dataclass(frozen=True)
class BuildStep(Event):
    kind: ClassVar[str] = "build_step"
    service: str
    line: str


@dataclass(frozen=True)
class BuildSkipped(Event):
    kind: ClassVar[str] = "build_skipped"
    service: str
    image: str
    reason: str


@dataclass(frozen=True)
class BuildDone(Event):
    kind: ClassVar[str] = "build_done"
    service: str
    image: str
    ms: float
    digest: str | None = None


@dataclass(frozen=True)
class Deployed(Event):
    kind: ClassVar[str] = "deploy"
    service: str
    image: str
    objects: int


@dataclass(frozen=True)
class Ready(Event):
    kind: ClassVar[str] = "ready"
    service: str
    urls: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Restarted(Event):
    kind: ClassVar[str] = "restart"
    service: str
    container: str


@dataclass(frozen=True)
class Log(Event):
    kind: ClassVar[str] = "log"
    service: str
    container: str
    line: str


@dataclass(frozen=True)
class Info(Event):
    kind: ClassVar[str] = "info"
    message: str
    service: str | None = None


@dataclass(frozen=True)
class WarningEvent(Event):
    kind: ClassVar[str] = "warning"
    message: str
    service: str | None = None


@dataclass(frozen=True)
class Error(Event):
    kind: ClassVar[str] = "error"
    message: str
    service: str | None = None


class Sink(Protocol):
    def __call__(self, event: Event) -> None: ...


Emit = Callable[[Event], None]


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

    _COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta")

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console

        self._console = Console(file=stream or sys.stderr, highlight=False, soft_wrap=True)
        self._lock = threading.Lock()

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
                return None
            case SyncDone():
                what = "replayed" if e.replay else "synced"
                return f"{tag}[green]{what}[/] {e.files} file(s), {e.deleted} deleted, {e.bytes} B in {e.ms:.0f} ms"
            case BuildStarted():
                return f"{tag}building {escape(e.image)}"
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
                return f"{tag}restarted process in {e.container[:12]}"
            case Info():
                return f"{tag}{escape(e.message)}"
            case WarningEvent():
                return f"{tag}[yellow]warning:[/] {escape(e.message)}"
            case Error():
                return f"{tag}[red]error:[/] {escape(e.message)}"
        return f"{tag}{e.kind} " + " ".join(f"{f.name}={getattr(e, f.name)}" for f in fields(e))
