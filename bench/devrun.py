"""The fixture the end-to-end benchmarks share: a busybox httpd project and a running `devloop dev`.

`bench_project()` writes the project into a temporary directory and removes every Docker
object it led to afterwards; `DevRun` starts the real `devloop dev --output json` on it
(tests/devproc.py parses the events) and finds its container; `Poller` is a long-lived
`docker exec` shell loop that prints the watched files whenever they change, so the
moment new content lands in the container is seen without opening an exec per look.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from common import import_paths

import_paths()
from devloop.runtime.base import StreamClosed, StreamTimeout  # noqa: E402
from devloop.runtime.docker.stream import DockerTransport  # noqa: E402
from tests.devproc import DevProcess, free_port  # noqa: E402

DOCKERFILE = """\
FROM devloop/busybox:latest
COPY site /www
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""
CONFIG = """\
name: {name}
services:
  web:
    image: devloop-bench/{name}
    context: app
    archetype: web
    ports: ["{port}:8080"]
    values: {{probe_path: /index.html}}
    sync:
      - src: "site/**"
        dest: /www
"""
# `--shared`: a second service in the same context with its own Dockerfile (compose's usual
# layout); its image reaches only api/, so web's edits must not rebuild it.
SHARED = """\
  api:
    image: devloop-bench/{name}-api
    context: app
    dockerfile: api.Dockerfile
    archetype: web
    ports: ["{api_port}:8080"]
    values: {{probe_path: /index.html}}
"""
API_DOCKERFILE = DOCKERFILE.replace("COPY site /www", "COPY api /www")
MULTI = 20  # files edited at once in the multi-file series
POLL_SCRIPT = """\
stop=$1; shift
prev=
while [ ! -e "$stop" ]; do
  cur=
  for f in "$@"; do l=; read -r l < "$f"; cur="$cur $l"; done 2>/dev/null
  if [ "$cur" != "$prev" ]; then echo "$cur"; prev=$cur; fi
  usleep 1000
done
"""


@dataclass(frozen=True)
class BenchProject:
    root: Path
    name: str
    port: int

    @property
    def context(self) -> Path:
        return self.root / "app"

    def multi(self) -> list[str]:
        """The context-relative paths of the multi-file series."""
        return [f"site/multi/f{k:02d}.txt" for k in range(MULTI)]


@contextlib.contextmanager
def bench_project(
    client: docker.DockerClient, kind: str, shared: bool = False
) -> Iterator[BenchProject]:
    """The httpd project in a temporary directory; its containers, networks and images removed
    after."""
    name = f"bench{kind}{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix=f"devloop-bench-{kind}-"))
    proj = BenchProject(tmp, name, free_port())
    app = proj.context
    (app / "site" / "multi").mkdir(parents=True)
    (app / "Dockerfile").write_text(DOCKERFILE)
    (app / ".dockerignore").write_text("*.log\n")
    (app / "site" / "index.html").write_text("v0\n")
    for rel in proj.multi():
        (app / rel).write_text("v0\n")
    (app / "README.md").write_text("outside the sync rules: a change rebuilds\n")
    (app / "notes.log").write_text("dockerignored: a change does nothing\n")
    config = CONFIG.format(name=name, port=proj.port)
    if shared:
        (app / "api").mkdir()
        (app / "api" / "index.html").write_text("api\n")
        (app / "api.Dockerfile").write_text(API_DOCKERFILE)
        config += SHARED.format(name=name, api_port=free_port())
    (tmp / "devloop.yaml").write_text(config)
    try:
        yield proj
    finally:
        remove_objects(client, name)
        shutil.rmtree(tmp, ignore_errors=True)


def remove_objects(client: docker.DockerClient, name: str) -> None:
    label = {"label": f"app.kubernetes.io/part-of={name}"}
    for c in client.containers.list(all=True, filters=label):
        c.remove(force=True)
    for n in client.networks.list(filters=label):
        n.remove()
    for repo in (f"devloop-bench/{name}", f"devloop-bench/{name}-api"):
        for img in client.images.list(name=repo):
            client.images.remove(img.id, force=True)


class DevRun:
    """`devloop dev --output json` on a BenchProject, from ready to Ctrl-C."""

    def __init__(
        self,
        client: docker.DockerClient,
        proj: BenchProject,
        *,
        env: dict[str, str] | None = None,
        selector: Sequence[str] = (),
        args: Sequence[str] = ("--no-ui",),
    ) -> None:
        self.client = client
        self.proj = proj
        # the labels of the container the service runs in (on Kubernetes: the pod's container)
        self.selector = list(selector) or [f"app.kubernetes.io/part-of={proj.name}"]
        self.dev = DevProcess(proj.root, *args, env=env)

    def __enter__(self) -> DevRun:
        try:
            self.dev.wait_event("ready", service="web", timeout=300)
        except BaseException:
            self.dev.interrupt()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.dev.interrupt()

    def container(self) -> Any:
        found = self.client.containers.list(filters={"label": self.selector})
        if len(found) != 1:
            raise RuntimeError(
                f"expected one container labelled {self.selector}, found {len(found)}"
            )
        return found[0]

    def mark(self) -> int:
        return self.dev.mark()

    def events(self, kind: str, since: int) -> list[dict[str, Any]]:
        return [e for e in self.dev.events[since:] if e.get("event") == kind]

    def wait(self, kind: str, since: int, timeout: float = 60.0) -> dict[str, Any]:
        """The first `kind` event at index >= since; polls every 2 ms (DevProcess polls at 50)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(kind, since)
            if found:
                return found[0]
            if self.dev.proc.poll() is not None:
                break
            time.sleep(0.002)
        raise RuntimeError(f"no {kind} event within {timeout:.0f} s:\n{self.dev.describe()}")

    def errors(self, since: int = 0) -> list[dict[str, Any]]:
        return self.events("error", since)


class Poller:
    """Prints the content of `paths` in the container each time it changes; lines timestamped on
    arrival."""

    def __init__(self, api: docker.APIClient, container: str, paths: Sequence[str]) -> None:
        self._api, self._container = api, container
        self._stop = f"/tmp/.devloop-bench-stop-{uuid.uuid4().hex[:8]}"
        argv = ["sh", "-c", POLL_SCRIPT, "poll", self._stop, *paths]
        self._io = DockerTransport(api, container, argv)
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(StreamClosed, StreamTimeout, OSError):
            while True:
                line = self._io.readline(3600).decode(errors="replace")
                now = time.perf_counter()
                with self._cond:
                    self.lines.append((now, line))
                    self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def wait(self, matches: Callable[[str], bool], since: int, timeout: float = 30.0) -> float:
        """perf_counter() when the first line at index >= since that `matches` arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, line in self.lines[since:]:
                    if matches(line):
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    last = self.lines[-1][1] if self.lines else "nothing"
                    raise RuntimeError(
                        f"the container did not show the edit in {timeout:.0f} s: {last!r}"
                    )
                self._cond.wait(left)

    def close(self) -> None:
        with contextlib.suppress(docker.errors.APIError):
            cmd = ["touch", self._stop]
            self._api.exec_start(self._api.exec_create(self._container, cmd)["Id"])
        self._io.close()
        self._thread.join(timeout=5)
