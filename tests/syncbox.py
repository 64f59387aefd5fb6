"""Fixtures for sync tests: throwaway busybox containers (named devloop-synctest-*, labelled) and
helpers.

Register with `pytest_plugins = ["tests.syncbox"]`.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from devloop.runtime.base import Transport
from devloop.runtime.docker.stream import DockerTransport
from devloop.sync.channel import Channel

PREFIX = "devloop-synctest"
LABELS = {"devloop.test": "sync"}


@dataclass
class Box:
    """One running test container."""

    container: docker.models.containers.Container
    api: docker.APIClient
    channels: list[Channel] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.container.id)

    def sh(self, script: str) -> tuple[int, str]:
        code, out = self.container.exec_run(["sh", "-c", script])
        return code, out.decode()

    def cat(self, path: str) -> str:
        code, out = self.sh(f"cat '{path}'")
        assert code == 0, out
        return out

    def opener(
        self, opened: list[Sequence[str]] | None = None
    ) -> Callable[[Sequence[str]], Transport]:
        """Opens a DockerTransport; records every argv in `opened` when given."""

        def open_transport(argv: Sequence[str]) -> Transport:
            if opened is not None:
                opened.append(list(argv))
            return DockerTransport(self.api, self.id, argv)

        return open_transport

    def channel(self, opened: list[Sequence[str]] | None = None) -> Channel:
        """A channel to this container, closed when the test ends."""
        channel = Channel(self.opener(opened), self.container.name)
        self.channels.append(channel)
        return channel


@pytest.fixture
def boxes(docker_client: docker.DockerClient, base_image: str) -> Iterator[Callable[..., Box]]:
    """Factory: `boxes(user=None, image=None, command=None)` runs `command` (`sleep`) in a
    fresh container; all removed after."""
    made: list[Box] = []

    def make(
        user: str | None = None, image: str | None = None, command: list[str] | None = None
    ) -> Box:
        container = docker_client.containers.run(
            image or base_image,
            command or ["sleep", "3600"],
            name=f"{PREFIX}-{uuid.uuid4().hex[:10]}",
            labels=LABELS,
            user=user,
            detach=True,
            stop_signal="SIGKILL",
        )
        made.append(Box(container, docker_client.api))
        return made[-1]

    yield make
    for box in made:
        for channel in box.channels:
            channel.close()
        box.container.remove(force=True)


@pytest.fixture(scope="session")
def image_builder(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., str]]:
    """Factory: `build(dockerfile, {name: host file})` makes a uniquely tagged image; removed
    after."""
    tags: list[str] = []

    def build(dockerfile: str, files: Mapping[str, Path] | None = None) -> str:
        context = tmp_path_factory.mktemp("image")
        (context / "Dockerfile").write_text(dockerfile)
        for name, source in (files or {}).items():
            shutil.copy(source, context / name)
        tag = f"{PREFIX}/img:{uuid.uuid4().hex[:10]}"
        docker_client.images.build(path=str(context), tag=tag, labels=LABELS, rm=True)
        tags.append(tag)
        return tag

    yield build
    for tag in tags:
        docker_client.images.remove(tag, force=True)
