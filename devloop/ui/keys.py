"""Keys while `devloop dev` runs in a terminal: r rebuild, R restart, t trigger, p pause/resume,
l logs of one service, o open a URL, ? help, q quit (= Ctrl-C).

The terminal is put in cbreak mode (keys arrive one by one, unechoed; Ctrl-C still signals)
only when stdin is a terminal this process owns the foreground of, and restored on the way out.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import webbrowser
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from devloop.errors import DevloopError

HELP = (
    ("r", "rebuild a service's image and make its containers anew"),
    ("R", "restart a service's process (same container)"),
    ("t", "trigger the changes that wait (manual trigger mode)"),
    ("p", "pause watching / resume (edits made meanwhile are applied then)"),
    ("l", "show the logs of one service only, or of all"),
    ("o", "open a service's URL"),
    ("?", "this help"),
    ("q", "quit, as Ctrl-C: stop and remove what devloop started"),
)


class Steerable(Protocol):
    """What the keys steer: the dev session."""

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def paused(self) -> bool: ...

    def request(self, command: str, service: str | None = None) -> None: ...


@runtime_checkable
class View(Protocol):
    """Where the keys answer: the terminal view."""

    def say(self, text: str) -> None: ...

    def prompt(self, text: str) -> None: ...

    def filter_logs(self, service: str | None) -> None: ...

    def urls(self) -> Mapping[str, list[str]]: ...


def quit_like_ctrl_c() -> None:
    """q takes the very path Ctrl-C takes: the same handler, cleanup and exit code."""
    os.kill(os.getpid(), signal.SIGINT)


def open_url(url: str) -> bool:
    """Open `url` in a graphical browser; False where there is none (a console browser would
    take over this terminal)."""
    if sys.platform != "darwin" and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


class Keys:
    """Turns key presses into session requests and view changes; a chooser when a key needs a
    service and there are several."""

    def __init__(
        self,
        session: Steerable,
        view: View,
        *,
        quit: Callable[[], None] = quit_like_ctrl_c,
        opener: Callable[[str], bool] = open_url,
    ) -> None:
        self._session = session
        self._view = view
        self._quit = quit
        self._open = opener
        self._asked_pause: bool | None = None  # a pause or resume not carried out yet
        self._choosing: tuple[str, list[str], bool] | None = None  # action, options, "all" allowed

    def press(self, key: str) -> None:
        try:
            self._press(key)
        except DevloopError as exc:  # a refused request must not end the key thread
            self._view.say(f"error: {exc}")

    def _press(self, key: str) -> None:
        if self._choosing is not None:
            self._choose(key)
            return
        match key:
            case "r":
                self._ask("rebuild", list(self._session.names), everything=True)
            case "R":
                self._ask("restart", list(self._session.names), everything=True)
            case "t":
                self._request("trigger")
            case "p":
                # the session's state, unless our last p is still queued (a build runs)
                paused = self._session.paused
                if self._asked_pause is not None and self._asked_pause != paused:
                    paused = self._asked_pause
                self._asked_pause = not paused
                self._request("pause" if self._asked_pause else "resume")
            case "l":
                self._ask("logs", list(self._session.names), everything=True)
            case "o":
                urls = self._view.urls()
                if not urls:
                    self._view.say("no service has a URL yet")
                else:
                    self._ask("open", list(urls), everything=False)
            case "?" | "h":
                self._view.say("\n".join(f"  {k}  {what}" for k, what in HELP))
            case "q":
                self._quit()

    def _ask(self, action: str, options: Sequence[str], *, everything: bool) -> None:
        if len(options) == 1:
            self._do(action, options[0])
            return
        self._choosing = (action, list(options), everything)
        choices = "  ".join(f"[{i}] {name}" for i, name in enumerate(options, 1))
        self._view.prompt(
            f"{action} which? {choices}" + ("  [a] all" if everything else "") + "  (Esc: cancel)"
        )

    def _choose(self, key: str) -> None:
        assert self._choosing is not None
        action, options, everything = self._choosing
        self._choosing = None
        self._view.prompt("")
        if key.isdigit() and 1 <= int(key) <= len(options):
            self._do(action, options[int(key) - 1])
        elif key == "a" and everything:
            self._do(action, None)

    def _do(self, action: str, service: str | None) -> None:
        if action == "logs":
            self._view.filter_logs(service)
            self._view.say(f"logs of {service}" if service else "logs of every service")
        elif action == "open":
            url = self._view.urls().get(service or "", [""])[0]
            if not self._open(url):
                self._view.say(f"open {url} in a browser")
        else:
            self._request(action, service)

    def _request(self, command: str, service: str | None = None) -> None:
        self._session.request(command, service)


def interactive() -> bool:
    """stdin is a terminal, and this process is in its foreground (not `devloop dev &`)."""
    try:
        fd = sys.stdin.fileno()
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def reading(keys: Keys, fd: int | None = None) -> Iterator[None]:
    """Read keys from the terminal on `fd` (stdin) in cbreak mode until the block ends; the
    terminal's settings come back however it ends."""
    import termios
    import tty

    fd = sys.stdin.fileno() if fd is None else fd
    saved = termios.tcgetattr(fd)
    stop = threading.Event()
    tty.setcbreak(fd, termios.TCSANOW)

    def again(*_: object) -> None:
        # after Ctrl-Z and `fg` the shell has put the terminal back to lines: cbreak again
        # (not after `bg`: a background process that sets the terminal is stopped)
        with contextlib.suppress(OSError):
            if os.tcgetpgrp(fd) == os.getpgrp():
                tty.setcbreak(fd, termios.TCSANOW)

    on_cont = signal.signal(signal.SIGCONT, again)
    thread = threading.Thread(target=_read, args=(fd, keys, stop), name="devloop-keys", daemon=True)
    try:
        thread.start()
        yield
    finally:
        stop.set()
        thread.join(timeout=1)
        signal.signal(signal.SIGCONT, on_cont)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read(fd: int, keys: Keys, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(fd, 64)
        except OSError:
            return
        if not data:
            return  # the terminal went away
        for key in data.decode(errors="replace"):
            keys.press(key)
