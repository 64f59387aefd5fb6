"""Typed events: what happened in a session, as records every sink (terminal, JSON, UI) reads."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

PATHS_SHOWN = 20
"""How many paths an event lists; `files`/`deleted` keep the full counts."""

VERSION = 1
"""The version of the event stream: every JSON line carries it as `"v"`. A field added to an
event keeps the version; a field removed or changing meaning raises it."""


@dataclass(frozen=True)
class Event:
    """One thing that happened. `--output json` writes `{"v", "event", "ts", **fields}`."""

    kind: ClassVar[str] = "event"
    # open events carry a document whose keys are not fields of the record (see PlanReport)
    open: ClassVar[bool] = False

    def fields(self) -> dict[str, Any]:
        return asdict(self)

    def payload(self) -> dict[str, Any]:
        return {"v": VERSION, "event": self.kind, "ts": round(time.time(), 3), **self.fields()}


@dataclass(frozen=True)
class Watching(Event):
    """The watcher is up: its roots, the files under them, how long the start took."""

    kind: ClassVar[str] = "watching"
    roots: list[str]
    files: int
    ms: float


@dataclass(frozen=True)
class Changes(Event):
    """A batch of changed paths (the first few, relative to the project)."""

    kind: ClassVar[str] = "changes"
    files: int
    paths: list[str]  # the first few, relative to the project
    ms: float | None = None  # first change seen → the loop took the batch (the quiet window)


@dataclass(frozen=True)
class SyncDone(Event):
    """Files copied into (or deleted from) a running container."""

    kind: ClassVar[str] = "sync"
    service: str
    container: str
    files: int
    deleted: int
    bytes: int  # the added files' size (not the size of what went over the wire)
    ms: float  # first change seen → acknowledgement from the container
    replay: bool = False
    paths: list[str] = field(default_factory=list)  # container paths, the first PATHS_SHOWN
    # the stages of the edit, each from the first change seen (`ms` is "applied"):
    planned_ms: float | None = None  # the plan decided to sync
    sent_ms: float | None = None  # the batch began to go out to this container


@dataclass(frozen=True)
class BuildStarted(Event):
    """An image build began."""

    kind: ClassVar[str] = "build_started"
    service: str
    image: str


@dataclass(frozen=True)
class BuildStep(Event):
    """A line of build output."""

    kind: ClassVar[str] = "build_step"
    service: str
    line: str


@dataclass(frozen=True)
class BuildProgress(Event):
    """A build reached step `step` of `steps` (`cached` of them so far from the cache)."""

    kind: ClassVar[str] = "build_progress"
    service: str
    step: int
    steps: int
    cached: int
    text: str  # the step's instruction, e.g. "RUN pip install -r requirements.txt"


@dataclass(frozen=True)
class BuildSkipped(Event):
    """An image build was not needed (the tag already exists)."""

    kind: ClassVar[str] = "build_skipped"
    service: str
    image: str
    reason: str


@dataclass(frozen=True)
class BuildDone(Event):
    """An image was built."""

    kind: ClassVar[str] = "build_done"
    service: str
    image: str
    ms: float
    digest: str | None = None


@dataclass(frozen=True)
class Deployed(Event):
    """A service's objects were applied."""

    kind: ClassVar[str] = "deploy"
    service: str
    image: str
    objects: int


@dataclass(frozen=True)
class Ready(Event):
    """A service is up, with the URLs it answers on."""

    kind: ClassVar[str] = "ready"
    service: str
    urls: list[str] = field(default_factory=list)
    replicas: int | None = None  # its running containers
    ms: float | None = None  # after an edit's in-place restart: first change seen → serving again


@dataclass(frozen=True)
class Restarted(Event):
    """The process in a container was restarted after a sync."""

    kind: ClassVar[str] = "restart"
    service: str
    container: str
    ms: float | None = None  # first change seen → the process is running again


@dataclass(frozen=True)
class Crashed(Event):
    """A container of a service exited or restarted without devloop asking (a crash, an OOM kill,
    `docker kill`); the runtime starts it again."""

    kind: ClassVar[str] = "crashed"
    service: str
    container: str
    exit_code: int | None  # None when the runtime does not know it
    restarts: int  # the container's unexpected exits so far in this session (Kubernetes: its
    # restartCount)


@dataclass(frozen=True)
class Requested(Event):
    """A steering command (a key, the dashboard) reached the session and is being carried out."""

    kind: ClassVar[str] = "request"
    command: str  # rebuild | restart | trigger | pause | resume
    service: str | None = None  # None: every service


@dataclass(frozen=True)
class Pending(Event):
    """Manual trigger mode: `files` changed files wait for a trigger (0 once triggered)."""

    kind: ClassVar[str] = "pending"
    service: str
    files: int
    paths: list[str] = field(default_factory=list)  # the first few, relative to the project


@dataclass(frozen=True)
class Paused(Event):
    """Watching is paused: edits are kept (`files` so far) and applied as one batch on resume."""

    kind: ClassVar[str] = "paused"
    files: int = 0


@dataclass(frozen=True)
class Resumed(Event):
    """Watching resumed; the `files` edits made while paused follow as one batch."""

    kind: ClassVar[str] = "resumed"
    files: int = 0


@dataclass(frozen=True)
class Log(Event):
    """A line a service's container printed."""

    kind: ClassVar[str] = "log"
    service: str
    container: str
    line: str


@dataclass(frozen=True)
class Dashboard(Event):
    """The web dashboard of `devloop dev` is served at `url` (loopback only)."""

    kind: ClassVar[str] = "dashboard"
    url: str


@dataclass(frozen=True)
class Info(Event):
    """Something worth saying."""

    kind: ClassVar[str] = "info"
    message: str
    service: str | None = None


@dataclass(frozen=True)
class WarningEvent(Event):
    """Something went wrong and devloop carried on."""

    kind: ClassVar[str] = "warning"
    message: str
    service: str | None = None


@dataclass(frozen=True)
class Error(Event):
    """Something failed; the session goes on."""

    kind: ClassVar[str] = "error"
    message: str
    service: str | None = None


@dataclass(frozen=True)
class Fatal(Event):
    """The command stopped: the message `error: ...` says on stderr, and the exit code."""

    kind: ClassVar[str] = "fatal"
    message: str
    exit_code: int


@dataclass(frozen=True)
class CheckResult(Event):
    """One `devloop doctor` check."""

    kind: ClassVar[str] = "check"
    name: str
    status: str  # ok | fail | warn | skip
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class BuildReport(Event):
    """`devloop build`'s result: the same document `--report FILE` writes."""

    kind: ClassVar[str] = "build_report"
    version: int
    services: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class PlanReport(Event):
    """`devloop plan`: the survey's document, its keys at the top level of the event."""

    kind: ClassVar[str] = "plan"
    open: ClassVar[bool] = True
    plan: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        return dict(self.plan)


@dataclass(frozen=True)
class InterceptStarted(Event):
    """`dev --local`: the service runs as a local process; the relay took its place."""

    kind: ClassVar[str] = "intercept_started"
    service: str
    command: str
    pid: int
    ports: list[int]  # where the local process is expected to listen
    header: str | None  # "name=value" for a personal intercept (HTTP/1.x only); None: all traffic
    forwards: dict[str, str]  # "service:port" -> the loopback address that reaches it here
    hosts: bool  # the names resolve through /etc/hosts entries devloop added


@dataclass(frozen=True)
class InterceptRelayed(Event):
    """One connection handed by the relay to the local process."""

    kind: ClassVar[str] = "intercept_relayed"
    service: str
    port: int
    total: int


@dataclass(frozen=True)
class InterceptEnded(Event):
    """The intercept is over: the original workload serves again, the relay is gone."""

    kind: ClassVar[str] = "intercept_ended"
    service: str
    relayed: int
    failed: int
    exit_code: int | None  # of the local process; None when devloop stopped it


def event_types() -> list[type[Event]]:
    """Every concrete event type, in definition order (the schema lists them so)."""
    seen: list[type[Event]] = []
    todo = list(Event.__subclasses__())
    while todo:
        cls = todo.pop(0)
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


class Sink(Protocol):
    def __call__(self, event: Event) -> None: ...


Emit = Callable[[Event], None]
