"""BuildKit through the Docker CLI: chosen when the CLI and engine have it, `RUN
--mount=type=cache`, labels without a LABEL step, the same tags and skips as the classic builder,
progress events."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from devloop import config
from devloop.build import buildkit
from devloop.build.builder import Builder
from devloop.model.events import BuildProgress, Event
from devloop.model.manifest import LABEL_PART_OF
from tests.conftest import IN_CI

pytestmark = [pytest.mark.docker]


@pytest.fixture
def cli(docker_client: docker.DockerClient) -> buildkit.Cli:
    found = buildkit.find_cli(str(docker_client.api.api_version))
    if found is None:
        if IN_CI:  # .ci/install.sh installs Debian's docker.io, whose CLI has BuildKit
            pytest.fail("no Docker CLI with BuildKit on PATH")
        pytest.skip("no Docker CLI with BuildKit on PATH")
    return found


@pytest.fixture
def project(
    devloop_project: Callable[..., Any], docker_client: docker.DockerClient, base_image: str
) -> Iterator[tuple[Any, str]]:
    name = f"bk{uuid.uuid4().hex[:8]}"
    cache_id = f"devloop-test-{name}"
    proj = devloop_project(
        {
            "devloop.yaml": f"name: {name}\nservices:\n  web:\n    image: devloop-test-bk/{name}\n"
            "    context: app\n",
            # the cache mount survives between builds: the second build counts two runs
            "app/Dockerfile": "FROM devloop/busybox:latest\nCOPY input.txt /input.txt\n"
            f"RUN --mount=type=cache,id={cache_id},target=/cache "
            "echo run >> /cache/runs && wc -l < /cache/runs > /runs\n",
            "app/input.txt": "one\n",
        }
    )
    yield proj, name
    for img in docker_client.images.list(name=f"devloop-test-bk/{name}"):
        docker_client.images.remove(img.id, force=True)


def _builder(proj: Any, client: docker.DockerClient) -> tuple[Builder, list[Event]]:
    seen: list[Event] = []
    return Builder(config.load(proj.path, ()), client, seen.append), seen


def test_cache_mounts_labels_tags_and_skips(
    cli: buildkit.Cli, project: tuple[Any, str], docker_client: docker.DockerClient
) -> None:
    proj, name = project
    builder, seen = _builder(proj, docker_client)
    first = builder.build()["web"]
    assert not first.skipped
    image = docker_client.images.get(first.ref)
    assert image.labels.get(LABEL_PART_OF) == name
    history = json.dumps(docker_client.api.history(first.ref))
    assert "LABEL" not in history, "labels are build options, not a LABEL step"
    progress = [e for e in seen if isinstance(e, BuildProgress)]
    assert progress and progress[-1].steps == 3 and progress[-1].step == 3, progress
    assert "RUN --mount=type=cache" in progress[-1].text

    again, seen = _builder(proj, docker_client)
    assert again.build()["web"].skipped  # same inputs, same tag: nothing to build

    (proj.path / "app/input.txt").write_text("two\n")
    builder, seen = _builder(proj, docker_client)
    second = builder.build()["web"]
    assert second.ref != first.ref and not second.skipped
    runs = docker_client.containers.run(
        second.ref, ["cat", "/runs"], remove=True, labels={"devloop.test": "buildkit"}
    )
    assert runs.strip() == b"2"
    assert any(isinstance(e, BuildProgress) and e.cached >= 1 for e in seen), "FROM is cached"


def test_the_classic_builder_when_asked(
    monkeypatch: pytest.MonkeyPatch, docker_client: docker.DockerClient
) -> None:
    monkeypatch.setenv("DEVLOOP_BUILDKIT", "0")
    assert buildkit.find_cli(str(docker_client.api.api_version)) is None
    monkeypatch.delenv("DEVLOOP_BUILDKIT")
    assert buildkit.find_cli("1.38") is None  # the engine predates BuildKit


def test_a_cli_of_23_or_later_without_buildx_is_passed_over(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text(
        '#!/bin/sh\n[ "$1" = --version ] && echo "Docker version 28.2.2, build x" && exit 0\n'
        'echo "docker: unknown command: docker $1" >&2; exit 1\n'
    )
    (fake / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", str(fake))
    buildkit._find.cache_clear()
    try:
        assert buildkit.find_cli("1.41") is None
        (fake / "docker").write_text(
            '#!/bin/sh\n[ "$1" = --version ] && echo "Docker version 20.10.24, build x"\n'
        )
        buildkit._find.cache_clear()
        found = buildkit.find_cli("1.41")
        assert found == buildkit.Cli((str(fake / "docker"), "build"), {"DOCKER_BUILDKIT": "1"})
    finally:
        buildkit._find.cache_clear()
    assert os.environ["PATH"] == str(fake)
