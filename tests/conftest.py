"""Shared fixtures: the Docker engine every test talks to, and CI's no-silent-skip rule."""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest

from tests import event_schema


@pytest.fixture(autouse=True)
def _event_stream_follows_the_schema() -> Iterator[None]:
    """Every JSON event a real devloop printed in this test validates against its schema."""
    event_schema.VIOLATIONS.clear()
    yield
    if event_schema.VIOLATIONS:
        lines = "\n".join(event_schema.VIOLATIONS[:10])
        pytest.fail(f"JSON events that break `devloop schema --events`:\n{lines}")


pytest_plugins = [
    "tests.project_fixture",
    "tests.kubeapi.fixture",
    "tests.syncbox",
    "tests.registries",
]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The real Docker Engine; in CI its absence fails the run instead of skipping tests."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # any failure to reach it means the same thing here
        if IN_CI:
            pytest.fail(f"CI needs a Docker Engine and none answers: {exc}")
        pytest.skip(f"no Docker Engine: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> str:
    """The busybox base every test image is built FROM (made by .ci/services.sh)."""
    name = "devloop/busybox:latest"
    try:
        docker_client.images.get(name)
    except docker.errors.ImageNotFound:
        pytest.fail(
            f"{name} is missing: run `bash .ci/services.sh` (it builds it from Debian's "
            f"busybox-static)"
        )
    return name
