"""The local process: started with the service's env, its output turned into Log events, stopped
with its whole process group."""

from __future__ import annotations

import contextlib
import os
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

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc else 0

    def start(self, emit: Emit) -> None:
        if not self.cwd.is_dir():
            raise ConfigError(
                f"local.cwd of service '{self.service}' is not a directory: {self.cwd}"
            )
        self._proc = subprocess.Popen(
            self.command,
            shell=True,
            cwd=self.cwd,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches devloop only; devloop stops the group
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        threading.Thread(target=self._pipe, args=(emit,), name="devloop-local", daemon=True).start()

    def poll(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, GRACE), (signal.SIGKILL, GRACE)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def _pipe(self, emit: Emit) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            emit(Log(self.service, "local", raw.decode(errors="replace").rstrip("\n")))


def _die_with_parent() -> None:
    """Linux: the process gets SIGTERM when devloop dies, even by SIGKILL (no orphan keeps the
    port)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1
