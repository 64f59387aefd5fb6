"""Typed events: what happened in a session, as records every sink (terminal, JSON, UI) reads."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol


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
