"""The local process: the pod's env, its output as events, stopped with its whole group."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from devloop.bridge.process import LocalProcess, _argv
from devloop.errors import ConfigError
from devloop.model.events import Event, Log


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("python -m app", ["python", "-m", "app"]),
        ("cd src && python -m app", ["/bin/sh", "-c", "cd src && python -m app"]),
        ("DEBUG=1 python app.py", ["/bin/sh", "-c", "DEBUG=1 python app.py"]),
        ("python -c 'print(1)'", ["/bin/sh", "-c", "python -c 'print(1)'"]),
    ],
)
def test_simple_commands_run_without_a_shell(command: str, argv: list[str]) -> None:
    assert _argv(command) == argv


def test_env_output_and_stop_reach_the_whole_group(tmp_path: Path) -> None:
    events: list[Event] = []
    pidfile = tmp_path / "child"
    script = (
        f"{sys.executable} -c 'import time; time.sleep(300)' & echo $! > {pidfile}; "
        'echo "greeting=$GREETING"; wait'
    )
    proc = LocalProcess("api", script, tmp_path, {"GREETING": "hi"})
    proc.start(events.append)
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    while not events and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    proc.stop()
    assert proc.poll() is not None
    assert Log("api", "local", "greeting=hi") in events
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the background child outlived stop()")


def test_a_missing_command_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no-such-devloop-command"):
        LocalProcess("api", "no-such-devloop-command --x", tmp_path, {}).start(lambda _e: None)
