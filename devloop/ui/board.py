"""The state the live terminal view shows, folded from the event stream (no terminal here)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from devloop.model.events import (
    BuildDone,
    BuildProgress,
    BuildSkipped,
    BuildStarted,
    Deployed,
    Error,
    Event,
    Paused,
    Pending,
    Ready,
    Restarted,
    Resumed,
    SyncDone,
    Watching,
)

BAR = 10  # characters of a build's progress bar


@dataclass
class Build:
    """An image build under way."""

    image: str
    started: float  # time.monotonic()
    step: int = 0
    steps: int = 0
    cached: int = 0
    text: str = ""

    def line(self, now: float) -> str:
        """`━━━━━━────  step 3/5 RUN make  4.2 s, 2 cached`."""
        done = round(BAR * self.step / self.steps) if self.steps else 0
        where = f"step {self.step}/{self.steps} {self.text}" if self.steps else "starting"
        cached = f", {self.cached} cached" if self.cached else ""
        return f"{'━' * done}{'─' * (BAR - done)}  {where}  {now - self.started:.1f} s{cached}"


@dataclass
class ServiceStatus:
    name: str
    state: str = "starting"  # building, built, deployed, ready, failed
    tag: str = ""  # the tag of the image that runs (or was last built)
    sync: str = ""  # the last sync: file names and milliseconds
    restarts: int = 0
    urls: list[str] = field(default_factory=list)
    pending: int = 0  # manual trigger: changed files that wait
    build: Build | None = None


def short_names(paths: list[str], total: int) -> str:
    """`index.html, app.css and 3 more`: base names of the first three paths."""
    names = ", ".join(p.rsplit("/", 1)[-1] or p for p in paths[:3])
    return names + (f" and {total - 3} more" if total > 3 else "")


class Board:
    """Per service what it is doing, the errors that still stand, and the session's state."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceStatus] = {}
        self.errors: dict[str | None, str] = {}  # service (None: the session) → pinned message
        self.paused: int | None = None  # files kept while paused; None when watching
        self.watching = ""

    def service(self, name: str) -> ServiceStatus:
        return self.services.setdefault(name, ServiceStatus(name))

    def apply(self, e: Event) -> None:
        svc = getattr(e, "service", None)
        s = self.service(svc) if isinstance(svc, str) else None
        match e:
            case BuildStarted():
                assert s
                s.state, s.build = "building", Build(e.image, time.monotonic())
            case BuildProgress():
                assert s
                b = s.build = s.build or Build("", time.monotonic())
                b.step, b.steps, b.cached, b.text = e.step, e.steps, e.cached, e.text
            case BuildDone() | BuildSkipped():
                assert s
                s.build, s.tag = None, _tag(e.image)
                s.state = "built" if s.state in ("starting", "building", "failed") else s.state
                self._resolved(e.service)
            case Deployed():
                assert s
                s.state, s.tag = "deployed", _tag(e.image)
            case Ready():
                assert s
                s.state, s.urls = "ready", list(e.urls) or s.urls
                self._resolved(e.service)
            case SyncDone():
                assert s
                total = e.files + e.deleted
                what = "replayed" if e.replay else "synced"
                s.sync = f"{what} {short_names(e.paths, total)} {e.ms:.0f} ms"
                if not e.replay:
                    self._resolved(e.service)
            case Restarted():
                assert s
                s.restarts += 1
            case Pending():
                assert s
                s.pending = e.files
            case Paused():
                self.paused = e.files
            case Resumed():
                self.paused = None
            case Watching():
                self.watching = f"watching {e.files} files"
            case Error():
                self.errors[e.service] = e.message
                # a failed build names no service: every build under way ended with it; a
                # service that runs (a failed sync) keeps running
                for t in [s] if s else self.services.values():
                    if t.build or (s and t.state != "ready"):
                        t.build, t.state = None, "failed"

    def _resolved(self, service: str) -> None:
        """A success of `service` ends its error, and the session's (a failed build or deploy
        names no service)."""
        self.errors.pop(service, None)
        self.errors.pop(None, None)


def _tag(image: str) -> str:
    return image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else image
