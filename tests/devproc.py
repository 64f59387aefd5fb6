"""Run the real `devloop dev --output json` as a subprocess and read its event stream."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import event_schema

Event = dict[str, Any]

# The fixture service of the end-to-end tests on both targets: busybox httpd serving
# /www, with a start marker (the shell's pid and a random number) so a restart of the
# process is visible over HTTP, and /conf/message copied at start for `then: restart`.
HTTPD_DOCKERFILE = """\
FROM devloop/busybox:latest
COPY site /www
COPY conf /conf
COPY README.md /README.md
EXPOSE 8080
CMD ["sh", "-c", "cat /conf/message > /www/message.txt; echo $$-$RANDOM > /www/started.txt; echo serving; exec httpd -f -p 8080 -h /www"]
"""  # noqa: E501


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, ""


def eventually(
    check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what or check}; last: {last!r}"
    )


class DevProcess:
    """`devloop dev --output json` in `directory`; events parsed line by line in a thread."""

    def __init__(self, directory: Path, *args: str, env: dict[str, str] | None = None) -> None:
        cmd = [
            sys.executable,
            "-m",
            "devloop",
            "-C",
            str(directory),
            "--output",
            "json",
            "dev",
            *args,
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.events: list[Event] = []
        self._new: queue.Queue[Event] = queue.Queue()
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in _lines(self.proc.stdout):
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "unparsed", "line": line.rstrip()}
            event_schema.check(ev)
            self.events.append(ev)
            self._new.put(ev)

    def _read_err(self) -> None:
        assert self.proc.stderr
        for line in _lines(self.proc.stderr):
            self.stderr.append(line.rstrip())

    def wait_event(self, kind: str, timeout: float = 120.0, since: int = 0, **match: Any) -> Event:
        """The first event of `kind` (at index >= since) whose fields equal `match`."""

        def find() -> Event | None:
            for ev in self.events[since:]:
                if ev.get("event") == kind and all(ev.get(k) == v for k, v in match.items()):
                    return ev
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"devloop exited {self.proc.returncode} before {kind} {match}:\n"
                    + self.describe()
                )
            return None

        try:
            return eventually(find, timeout, 0.05, f"event {kind} {match}")
        except AssertionError as exc:  # what devloop said by then, not when the wait began
            raise AssertionError(f"{exc}\n{self.describe()}") from None

    def mark(self) -> int:
        return len(self.events)

    def describe(self) -> str:
        tail = "\n".join(json.dumps(e) for e in self.events[-30:])
        return f"events:\n{tail}\nstderr:\n" + "\n".join(self.stderr[-30:])

    def interrupt(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                "devloop dev did not stop within a minute of Ctrl-C:\n" + self.describe()
            ) from None
        finally:
            self.close()

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        for t in self._readers:
            t.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                with contextlib.suppress(OSError, ValueError):
                    stream.close()

    def errors(self) -> list[Event]:
        return [e for e in self.events if e.get("event") == "error"]


def _lines(stream: Any) -> Any:
    """Lines until EOF, or until the stream is closed under us at teardown."""
    try:
        yield from stream
    except (OSError, ValueError):
        return
