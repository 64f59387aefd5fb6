"""A devloop project written into a tmpdir, and the real CLI run on it in-process.

Register with `pytest_plugins = ["tests.project_fixture"]`; then:

    def test_x(devloop_project):
        proj = devloop_project({"devloop.yaml": "...", "app/Dockerfile": "FROM scratch\n"})
        result = proj.run("render")
        assert result.code == 0, result.err
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from devloop.cli import run as cli_run
from tests import event_schema

Files = Mapping[str, "str | bytes"]


@dataclass(frozen=True)
class Result:
    """What a user sees: the exit code, stdout and stderr."""

    code: int
    out: str
    err: str


class DevloopProject:
    """A project directory plus a way to run `devloop` on it with a chosen environment."""

    def __init__(
        self, path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.path = path
        self._capsys = capsys
        self._monkeypatch = monkeypatch

    def write(self, files: Files) -> None:
        """Write `files` (path → text or bytes; text is dedented; a path ending in / is a
        directory)."""
        for rel, content in files.items():
            target = self.path / rel
            if rel.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")

    def run(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        chdir_flag: bool = True,
    ) -> Result:
        """`devloop -C <project> ARGS` from `cwd` (default: the project), in-process.

        `env` sets variables (None unsets one) for the rest of the test; `chdir_flag=False`
        leaves `-C` out so a test can pass its own.
        """
        for name, value in (env or {}).items():
            if value is None:
                self._monkeypatch.delenv(name, raising=False)
            else:
                self._monkeypatch.setenv(name, value)
        self._monkeypatch.chdir(cwd or self.path)
        argv = ["-C", str(self.path), *args] if chdir_flag else list(args)
        self._capsys.readouterr()  # drop anything printed before this run
        code = cli_run(argv)
        captured = self._capsys.readouterr()
        if "json" in args:
            event_schema.check_stream(captured.out)
        return Result(code, captured.out, captured.err)


@pytest.fixture
def devloop_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Files], DevloopProject]]:
    """Factory: `devloop_project(files)` writes files into a fresh directory and returns it.

    The user's kubeconfig and DEVLOOP_* variables never leak in: KUBECONFIG points at a
    file that does not exist unless a test writes one.
    """
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    count = 0

    def make(files: Files) -> DevloopProject:
        nonlocal count
        count += 1
        path = tmp_path / ("proj" if count == 1 else f"proj{count}")
        path.mkdir()
        project = DevloopProject(path, capsys, monkeypatch)
        project.write(files)
        return project

    yield make
