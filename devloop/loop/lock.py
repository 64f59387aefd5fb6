"""One `devloop dev` per project and target: a lock file under the user's state directory.

The kernel holds the lock (flock) for as long as the process lives, so a session that
died (kill -9, a closed laptop) leaves no stale lock, only a note of who it was: the next
session takes over and says so.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
from pathlib import Path
from typing import IO, Any

from devloop.errors import DevloopError


class SessionLocked(DevloopError):
    """Another `devloop dev` of this project and target is running."""


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "devloop" / "sessions"


class SessionLock:
    """Held from `acquire` to `release`; `previous` describes a session that was gone."""

    def __init__(self, project: str, target: str, where: str = "") -> None:
        key = "-".join(p for p in (project, target, where) if p)
        self.what = f"{project} on {target}{f' ({where})' if where else ''}"
        self.path = state_dir() / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".lock")
        self._file: IO[str] | None = None
        self.previous: dict[str, Any] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(f)
            f.close()
            raise SessionLocked(
                f"another `devloop dev` of {self.what} is running: pid {holder.get('pid', '?')}"
                f", since {holder.get('since', '?')}; stop it first (Ctrl-C in its terminal)"
            ) from None
        old = _read(f)
        self.previous = old or None
        since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "since": since}) + "\n")
        f.flush()
        self._file = f

    def took_over(self) -> str | None:
        """What to say when a previous session of this project ended without cleaning up."""
        if not self.previous:
            return None
        return (
            f"the previous `devloop dev` of {self.what} (pid {self.previous.get('pid', '?')}, "
            f"since {self.previous.get('since', '?')}) is gone: taking over its containers"
        )

    def release(self) -> None:
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self._file.seek(0)
            self._file.truncate()  # a clean end: nothing to take over from
        self._file.close()  # closing drops the flock
        self._file = None


def _read(f: IO[str]) -> dict[str, Any]:
    f.seek(0)
    try:
        data = json.loads(f.read() or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
