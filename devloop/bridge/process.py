"""The local process: started with the service's env, its output turned into Log events, stopped
with its whole process group."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from devloop.errors import ConfigError
from devloop.model.events import Emit, Log

GRACE = 5.0


class LocalProcess:
    def __init__(self, service: str, command: str, cwd: Path, env: Mapping[str, str]) -> None:
        self.service = service
        self.command = command
        self.cwd = cwd
        self.env = dict(env)
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc else 0

    def start(self, emit: Emit) -> None:
        if not self.cwd.is_dir():
            raise ConfigError(
                f"local.cwd of service '{self.service}' is not a directory: {self.cwd}"
            )
        try:
            self._proc = subprocess.Popen(
                _argv(self.command),
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches devloop only; devloop stops the group
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot start the local command of service '{self.service}' "
                f"({self.command}): {exc}"
            ) from None
        self._reader = threading.Thread(
            target=self._pipe, args=(emit,), name="devloop-local", daemon=True
        )
        self._reader.start()

    def poll(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def stop(self) -> None:
        """SIGTERM to the process group (what it started in the background too), SIGKILL after
        a grace period."""
        proc = self._proc
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(GRACE)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._reader is not None:
            self._reader.join(GRACE)

    def _pipe(self, emit: Emit) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with self._proc.stdout:
            for raw in self._proc.stdout:
                emit(Log(self.service, "local", raw.decode(errors="replace").rstrip("\n")))


_SHELL = re.compile(r"[;&|<>()`$\\\n*?~{}\[\]#'\"]")


def _argv(command: str) -> list[str]:
    """A simple command runs as itself (so the death signal reaches it, not a shell in between);
    anything the shell must read (pipes, `&&`, quotes, variables, globs) runs under `sh -c`."""
    words = command.split()
    if words and not _SHELL.search(command) and "=" not in words[0]:
        return words
    return ["/bin/sh", "-c", command]


def _die_with_parent() -> None:
    """Linux: the process gets SIGTERM when devloop dies, even by SIGKILL (no orphan keeps the
    port)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1
