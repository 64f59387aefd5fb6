"""Build through the Docker CLI with BuildKit when the CLI and the engine support it: `RUN
--mount=type=cache`, BuildKit's cache and its parallel stages, which the Docker SDK's classic
builder lacks (docker-py#2230).

Which CLI: the first `docker` on PATH that has the buildx plugin (`docker buildx build --load`),
or that is older than 23.0 (its own BuildKit client: `DOCKER_BUILDKIT=1 docker build`); 23.0 and
later without buildx only have the classic builder. The engine needs API 1.39 (Docker 18.09).
DEVLOOP_BUILDKIT=0 keeps the classic builder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from devloop.build.output import BuildLog
from devloop.errors import BuildError
from devloop.model.project import Service

MIN_API = (1, 39)
_VERSION = re.compile(r"version (\d+)\.(\d+)")
_running: set[subprocess.Popen[bytes]] = set()
_running_lock = threading.Lock()


@dataclass(frozen=True)
class Cli:
    """How to run a BuildKit build: the command up to its options, and the environment it needs."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


def find_cli(api_version: str) -> Cli | None:
    """The Docker CLI that builds with BuildKit against an engine of `api_version`, or None."""
    if os.environ.get("DEVLOOP_BUILDKIT", "").lower() in ("0", "false", "no", "off"):
        return None
    if _api(api_version) < MIN_API:
        return None
    return _find()


@cache
def _find() -> Cli | None:
    for exe in _candidates():
        if _ok([exe, "buildx", "version"]):
            return Cli((exe, "buildx", "build", "--load"))
        version = _client_version(exe)
        if version is not None and (18, 9) <= version < (23, 0):
            return Cli((exe, "build"), {"DOCKER_BUILDKIT": "1"})
    return None


def _candidates() -> Iterator[str]:
    seen: set[str] = set()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        exe = shutil.which("docker", path=directory) if directory else None
        if exe and os.path.realpath(exe) not in seen:
            seen.add(os.path.realpath(exe))
            yield exe


def _ok(argv: list[str]) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _client_version(exe: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _VERSION.search(out)
    return (int(m[1]), int(m[2])) if m else None


def _api(version: str) -> tuple[int, int]:
    try:
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return (0, 0)


class BuildKitBuild:
    """`docker build` with BuildKit, progress as plain lines; labels as build options (no LABEL
    step)."""

    def __init__(self, cli: Cli, labels: Mapping[str, str]) -> None:
        self._cli = cli
        self._labels = dict(labels)

    def __call__(
        self, svc: Service, ref: str, build_args: Mapping[str, str], on_line: Callable[[str], None]
    ) -> None:
        log = BuildLog(on_line)
        what = f"build of {svc.name} ({ref}) failed"
        try:
            proc = subprocess.Popen(
                self.argv(svc, ref, build_args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self._cli.env},
            )
        except OSError as exc:
            raise BuildError(f"{what}: cannot run {self._cli.argv[0]}: {exc}") from None
        with _running_lock:
            _running.add(proc)
        last = ""
        try:
            with proc:  # closes the pipe, waits for the exit
                assert proc.stdout is not None
                for raw in proc.stdout:
                    line = raw.decode(errors="replace").rstrip()
                    last = line or last
                    log.line(line)
        finally:
            with _running_lock:
                _running.discard(proc)
        code = proc.returncode
        if code != 0:
            reason = re.sub(r"^(#\d+ )?(ERROR|error): ", "", last) or f"exit code {code}"
            raise BuildError(log.failure(what, reason))

    def argv(self, svc: Service, ref: str, build_args: Mapping[str, str]) -> list[str]:
        argv = [*self._cli.argv, "--progress=plain", "-t", ref, "-f", str(svc.dockerfile)]
        for k, v in build_args.items():
            argv += ["--build-arg", f"{k}={v}"]
        for k, v in self._labels.items():
            argv += ["--label", f"{k}={v}"]
        if svc.target:
            argv += ["--target", svc.target]
        return [*argv, str(Path(svc.context))]


def cancel_all() -> None:
    """Stop the builds under way: the CLI cancels its build in the engine on SIGINT. (Ctrl-C in
    the terminal reaches it directly; `q`, SIGTERM and SIGHUP reach devloop only.)"""
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGINT)
