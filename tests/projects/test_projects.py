"""Projects shaped like the ones users bring, end to end: init, render, dev, run, delete.

Each folder here is a small project modelled on the public examples users try first
(Skaffold's hot-reload and microservices examples, Docker's compose-watch samples),
with the dev servers users run in containers: Vite, nodemon, Flask's reloader,
uvicorn --reload. For each one: `devloop init` must infer the rules we expect, its
config must render valid manifests, and `devloop dev` must serve an edit, the last
save of a burst (seen by the in-container watcher), a rebuild and a renamed folder;
then `run` deploys it and `delete` leaves nothing behind.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from devloop import config
from devloop.files.ignore import PathRules
from devloop.loop.plan import plan
from devloop.model.changes import Change
from devloop.model.project import Project
from tests.devproc import DevProcess, eventually, free_port, http_get

pytestmark = [pytest.mark.docker]

SYNC, REBUILD = "sync", "rebuild"


@dataclass(frozen=True)
class Edit:
    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Rename:
    old: str  # a synced folder
    new: str
    leaf: str  # a file in it
    old_url: str  # where it is served from, before and after
    new_url: str
    imports: Edit | None = None  # the import a user fixes after renaming


@dataclass(frozen=True)
class Spec:
    folder: str
    service: str  # the one answering HTTP, named as init names it
    port: int  # its container port
    url: str  # what shows the edit
    edit: Edit
    expect: dict[str, dict[str, str]]  # service -> path -> sync | rebuild (what init infers)
    burst: bool  # an in-container watcher serves the last save of a burst
    rebuild: Edit | None = None  # a build input: the change rebuilds, then is served
    rename: Rename | None = None
    restarts: dict[str, str] = field(default_factory=dict)  # service -> then (expected)


SPECS = [
    Spec(
        "vite",
        "vite",
        5173,
        "/src/main.js",
        Edit("src/main.js", "hello from vite v1", "hello from vite v2"),
        {
            "vite": {
                "src/main.js": SYNC,
                "index.html": SYNC,
                "package.json": REBUILD,
                "package-lock.json": REBUILD,
                "npm-cache/index-v5/x": REBUILD,
            }
        },
        burst=True,
        rebuild=Edit("package.json", '"version": "0.1.0"', '"version": "0.1.1"'),
        rename=Rename(
            "src/components",
            "src/parts",
            "label.js",
            "/src/components/label.js",
            "/src/parts/label.js",
            Edit("src/main.js", "./components/label.js", "./parts/label.js"),
        ),
        restarts={"vite": "none"},
    ),
    Spec(
        "nodemon",
        "nodemon",
        3000,
        "/",
        Edit("src/message.js", "hello from nodemon v1", "hello from nodemon v2"),
        {"nodemon": {"src/index.js": SYNC, "public/docs.txt": SYNC, "package.json": REBUILD}},
        burst=True,
        rebuild=Edit("package.json", '"version": "0.1.0"', '"version": "0.1.1"'),
        rename=Rename(
            "public/guides", "public/howto", "start.txt", "/guides/start.txt", "/howto/start.txt"
        ),
        restarts={"nodemon": "none"},
    ),
    Spec(
        "flask",
        "flask",
        5000,
        "/",
        Edit("app/message.py", "hello from flask v1", "hello from flask v2"),
        {"flask": {"app/main.py": SYNC, "requirements.txt": REBUILD, "wheels/x.whl": REBUILD}},
        burst=True,
        rebuild=Edit("requirements.txt", "flask==3.0.3", "flask==3.0.3  # pinned"),
        rename=Rename(
            "app/static/css",
            "app/static/styles",
            "site.css",
            "/static/css/site.css",
            "/static/styles/site.css",
        ),
        restarts={"flask": "none"},  # FLASK_DEBUG=1: its reloader restarts it
    ),
    Spec(
        "uvicorn",
        "uvicorn",
        8000,
        "/",
        Edit("app/message.py", "hello from uvicorn v1", "hello from uvicorn v2"),
        {"uvicorn": {"app/main.py": SYNC, "requirements.txt": REBUILD}},
        burst=True,
        rebuild=Edit("requirements.txt", "uvicorn==0.30.6", "uvicorn==0.30.6  # pinned"),
        rename=Rename(
            "app/pages/docs",
            "app/pages/guide",
            "index.txt",
            "/pages/docs/index.txt",
            "/pages/guide/index.txt",
        ),
        restarts={"uvicorn": "none"},  # --reload
    ),
    Spec(
        "go",
        "go",
        8080,
        "/",
        Edit("greeting.go", "hello from go v1", "hello from go v2"),
        {"go": {"main.go": REBUILD, "greeting.go": REBUILD, "go.mod": REBUILD}},
        burst=False,
    ),
    Spec(
        "shared",
        "web",
        8080,
        "/",
        Edit("api/__main__.py", "hello from api v1", "hello from api v2"),
        {
            "web": {"web/__main__.py": SYNC, "docker/web.Dockerfile": REBUILD},
            "api": {"api/__main__.py": SYNC},
        },
        burst=False,
        rebuild=Edit("docker/web.Dockerfile", "WORKDIR /srv", "WORKDIR /srv\nENV MODE=dev"),
        restarts={"web": "restart", "api": "restart"},
    ),
]


def outcome(project: Project, service: str, rel: str) -> str:
    svc = project.services[service]
    p = plan(
        project, [service], [Change("modified", svc.context / rel)], PathRules(project, [service])
    )
    sp = p.service(service)
    if sp is None:
        return "nothing"
    return REBUILD if sp.rebuild else SYNC


def devloop(directory: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devloop", "-C", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def init(directory: Path) -> tuple[Project, str, str]:
    """`devloop init`, then the project renamed uniquely with free local ports."""
    result = devloop(directory, "init")
    assert result.returncode == 0, result.stdout + result.stderr
    raw: dict[str, Any] = yaml.safe_load((directory / "devloop.yaml").read_text())
    name = f"devloop-test-proj-{uuid.uuid4().hex[:8]}"
    raw["name"] = name
    for svc in raw["services"].values():
        svc["image"] = f"{name}/{svc['image'].split('/')[-1]}"
        if svc.get("ports"):
            svc["ports"] = [f"{free_port()}:{p.split(':')[-1]}" for p in svc["ports"]]
    (directory / "devloop.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return config.load(directory), name, result.stdout


def local_port(project: Project, service: str, port: int) -> int:
    return next(p.local for p in project.services[service].ports if p.container == port)


def replace_in(directory: Path, edit: Edit) -> None:
    path = directory / edit.file
    text = path.read_text()
    assert edit.old in text, f"{edit.old!r} not in {edit.file}"
    path.write_text(text.replace(edit.old, edit.new))


def served(base: str, text: str, timeout: float = 90) -> None:
    eventually(lambda: text in http_get(base, timeout=5)[1], timeout, 0.2, f"{text!r} at {base}")


@pytest.fixture
def cleanup(docker_client: docker.DockerClient) -> Iterator[list[tuple[Path, str]]]:
    """Projects to delete after the test, and check: nothing of theirs may be left."""
    made: list[tuple[Path, str]] = []
    yield made
    for directory, name in made:
        devloop(directory, "delete", "--images")
        label = f"app.kubernetes.io/part-of={name}"
        for container in docker_client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)
        for network in docker_client.networks.list(filters={"label": label}):
            network.remove()


def left_behind(client: docker.DockerClient, name: str) -> list[str]:
    label = f"app.kubernetes.io/part-of={name}"
    return [c.name for c in client.containers.list(all=True, filters={"label": label})] + [
        n.name for n in client.networks.list(filters={"label": label})
    ]


def burst(path: Path, make: Callable[[int], str], saves: int = 10) -> str:
    """`saves` writes 2 ms apart, in place as editors do; returns the last content."""
    for i in range(saves):
        path.write_text(make(i))
        time.sleep(0.002)
    return make(saves - 1)


class Poller:
    """Requests `url` in a loop, as a browser tab or a health check does during a burst."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            http_get(self.url, timeout=2)

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("spec", SPECS, ids=[s.folder for s in SPECS])
def test_project_end_to_end(
    spec: Spec,
    project_copy: Callable[[str], Path],
    docker_client: docker.DockerClient,
    cleanup: list[tuple[Path, str]],
) -> None:
    directory = project_copy(spec.folder)
    project, name, said = init(directory)
    cleanup.append((directory, name))

    # init: the rules we expect, and nothing that cannot build
    for service, paths in spec.expect.items():
        assert service in project.services, said
        for rel, want in paths.items():
            assert outcome(project, service, rel) == want, f"{service}: {rel}\n{said}"
    for service, then in spec.restarts.items():
        assert {r.then for r in project.services[service].sync} == {then}, said

    rendered = devloop(directory, "render", "--validate")
    assert rendered.returncode == 0, rendered.stderr

    base = f"http://127.0.0.1:{local_port(project, spec.service, spec.port)}"
    url = base + spec.url
    dev = DevProcess(directory)
    try:
        dev.wait_event("ready", timeout=300, service=spec.service)
        served(url, spec.edit.old)

        # an edit is served
        replace_in(directory, spec.edit)
        served(url, spec.edit.new)

        # the last save of a burst is what the in-container watcher serves, and stays
        if spec.burst:
            target = directory / spec.edit.file
            original = target.read_text()
            for round_ in range(3 if spec.folder == "vite" else 1):
                with Poller(url):
                    last = burst(
                        target,
                        lambda i, r=round_: original.replace(spec.edit.new, f"burst {r}.{i} end"),
                    )
                tag = last[last.index("burst ") :].split(" end")[0]
                served(url, tag, timeout=30)
                time.sleep(1.0)
                assert tag in http_get(url)[1], f"round {round_}: the last save was replaced"

        # a build input rebuilds, and the app still answers
        if spec.rebuild is not None:
            mark = dev.mark()
            replace_in(directory, spec.rebuild)
            dev.wait_event("build_done", timeout=300, since=mark, service=spec.service)
            dev.wait_event("ready", timeout=300, since=mark, service=spec.service)
            served(url, "burst" if spec.burst else spec.edit.new)

        # a synced folder renamed: the file is served from its new place only
        if spec.rename is not None:
            rn = spec.rename
            content = (directory / rn.old / rn.leaf).read_text().strip()
            (directory / rn.old).rename(directory / rn.new)
            served(base + rn.new_url, content)
            eventually(
                lambda: content not in http_get(base + rn.old_url)[1],
                30,
                0.2,
                f"{rn.old} gone from the container",
            )
            if rn.imports is not None:
                replace_in(directory, rn.imports)
                served(base + spec.url, rn.imports.new.removeprefix("."))
        assert not dev.errors(), dev.describe()
    finally:
        code = dev.interrupt()
    assert code in (0, 130), dev.describe()
    assert left_behind(docker_client, name) == []

    # run: one shot, healthy; delete: nothing left
    ran = devloop(directory, "run", "--timeout", "240")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr
    served(base + spec.url, spec.edit.new if not spec.burst else "burst")
    deleted = devloop(directory, "delete")
    assert deleted.returncode == 0, deleted.stderr
    assert left_behind(docker_client, name) == []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_crash_looping_service_is_diagnosed_and_deleted(
    project_copy: Callable[[str], Path],
    docker_client: docker.DockerClient,
    cleanup: list[tuple[Path, str]],
) -> None:
    directory = project_copy("crashloop")
    project, name, said = init(directory)
    cleanup.append((directory, name))
    (service,) = project.services
    assert outcome(project, service, "main.py") == SYNC, said
    rendered = devloop(directory, "render", "--validate")
    assert rendered.returncode == 0, rendered.stderr

    ran = devloop(directory, "run", "--timeout", "60")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "DATABASE_URL is not set" in ran.stderr + ran.stdout
    deleted = devloop(directory, "delete")
    assert deleted.returncode == 0, deleted.stderr
    assert left_behind(docker_client, name) == []

    # dev: the crash is said, and the fix is served
    dev = DevProcess(directory)
    try:
        eventually(
            lambda: any("DATABASE_URL is not set" in str(e) for e in dev.events),
            120,
            0.2,
            "the crash's reason in dev's output",
        )
        replace_in(
            directory,
            Edit(
                "main.py", 'os.environ.get("DATABASE_URL")', 'os.environ.get("DATABASE_URL", "db")'
            ),
        )
        port = local_port(project, service, 8000)
        # the fix lands in the container when it runs again: the engine's restart backoff
        # (doubling up to a minute while it crash-loops) sets the pace, not devloop
        served(f"http://127.0.0.1:{port}/", "connected to db", timeout=420)
    finally:
        code = dev.interrupt()
    assert code in (0, 130), dev.describe()
    assert left_behind(docker_client, name) == []
