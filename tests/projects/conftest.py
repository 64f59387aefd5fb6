"""The realistic projects: each copied into a tmpdir with its dependencies vendored.

Their Dockerfiles install dependencies the way offline CI builds do (`npm ci --offline`
from a filled npm cache, `pip install --no-index` from a folder of wheels), so the
image builds need no network; the cache and the wheels are fetched once, before the
build, by a throwaway container from the same local base image (npm registry, PyPI),
and kept in pytest's cache directory between sessions.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

HERE = Path(__file__).resolve().parent
# A machine behind a TLS-inspecting proxy trusts its CA in this bundle; the containers
# that fetch the dependencies get the same trust (on a plain machine it is the usual bundle).
CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")


def _fetch(client: docker.DockerClient, image: str, script: str, out: Path) -> None:
    volumes = {str(out): {"bind": "/w", "mode": "rw"}}
    env = {"HOME": "/tmp", "npm_config_update_notifier": "false"}
    if CA_BUNDLE.is_file():
        volumes[str(CA_BUNDLE)] = {"bind": "/etc/devloop-ca.crt", "mode": "ro"}
        env |= {"NODE_EXTRA_CA_CERTS": "/etc/devloop-ca.crt", "PIP_CERT": "/etc/devloop-ca.crt"}
    container = client.containers.run(
        image,
        ["sh", "-c", script],
        name=f"devloop-test-deps-{uuid.uuid4().hex[:8]}",
        working_dir="/w",
        user=f"{os.getuid()}:{os.getgid()}",
        environment=env,
        volumes=volumes,
        labels={"devloop.test": "deps"},
        detach=True,
    )
    try:
        result = container.wait(timeout=600)
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert result["StatusCode"] == 0, f"fetching dependencies in {image} failed:\n{logs[-3000:]}"


def fetch_npm(client: docker.DockerClient, project: Path, out: Path) -> None:
    shutil.copy(project / "package.json", out / "package.json")
    _fetch(
        client,
        "devloop/node:18",
        "npm install --no-audit --no-fund --cache /w/npm-cache >/dev/null && rm -rf node_modules",
        out,
    )


def fetch_pip(client: docker.DockerClient, project: Path, out: Path) -> None:
    shutil.copy(project / "requirements.txt", out / "requirements.txt")
    _fetch(
        client,
        "devloop/python:3",
        "pip download --quiet --only-binary=:all: --dest /w/wheels -r requirements.txt",
        out,
    )


@pytest.fixture(scope="session")
def vendored(
    request: pytest.FixtureRequest,
    docker_client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[Path], None]:
    """`vendored(project_dir)`: put the npm cache and lockfile, or the wheels, into it."""
    # kept between sessions in pytest's cache; CI runs without it (-p no:cacheprovider)
    store = getattr(request.config, "cache", None)
    cache = (
        Path(store.mkdir("devloop-project-deps"))
        if store is not None
        else tmp_path_factory.mktemp("project-deps")
    )

    def vendor(project: Path) -> None:
        if (project / "package.json").is_file():
            kind, manifest, fetch = "npm", project / "package.json", fetch_npm
        elif (project / "requirements.txt").is_file():
            kind, manifest, fetch = "pip", project / "requirements.txt", fetch_pip
        else:
            return
        key = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]
        done = cache / f"{kind}-{key}"
        if not (done / ".complete").exists():
            shutil.rmtree(done, ignore_errors=True)
            done.mkdir(parents=True)
            fetch(docker_client, project, done)
            (done / ".complete").write_text("")
        for name in ("npm-cache", "wheels"):
            if (done / name).is_dir():
                shutil.copytree(done / name, project / name)
        if (done / "package-lock.json").is_file():
            shutil.copy(done / "package-lock.json", project / "package-lock.json")

    return vendor


@pytest.fixture
def project_copy(
    tmp_path: Path, vendored: Callable[[Path], None]
) -> Iterator[Callable[[str], Path]]:
    """`project_copy(name)`: tests/projects/<name> in a tmpdir, dependencies vendored."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(HERE / name, target, ignore=shutil.ignore_patterns("__pycache__"))
        vendored(target)
        return target

    yield copy
