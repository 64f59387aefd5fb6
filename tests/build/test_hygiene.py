"""Image hygiene on the real engine: the newest tags stay, the one running stays, others go."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from devloop import config
from devloop.build import hygiene
from devloop.model.manifest import LABEL_PART_OF

pytestmark = [pytest.mark.docker]


@pytest.fixture
def repo(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    name = f"i15hyg{uuid.uuid4().hex[:8]}"
    yield name
    for img in docker_client.images.list(name=f"i15/{name}"):
        docker_client.images.remove(img.id, force=True)


def _build(client: docker.DockerClient, ref: str, n: int, labels: dict[str, str]) -> None:
    dockerfile = f"FROM devloop/busybox:latest\nENV N={n}\n".encode()
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=ref, labels=labels, rm=True)


def test_prune_keeps_the_newest_and_the_running_tag(
    tmp_path: Path, docker_client: docker.DockerClient, repo: str
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app/Dockerfile").write_text("FROM devloop/busybox:latest\n")
    (tmp_path / "devloop.yaml").write_text(
        f"name: {repo}\nservices:\n  web: {{image: i15/{repo}, context: app}}\n"
    )
    project = config.load(tmp_path)
    image = f"i15/{repo}"
    for n in range(1, 6):
        _build(docker_client, f"{image}:t{n}", n, {LABEL_PART_OF: repo})
    _build(docker_client, f"{image}:mine", 99, {})  # the user's own: never touched

    removed = hygiene.prune(docker_client, project, {"web": f"{image}:t1"}, keep=3)

    left = {t for img in docker_client.images.list(name=image) for t in img.tags}
    assert sorted(removed) == [f"{image}:t2", f"{image}:t3"]
    assert left == {f"{image}:t1", f"{image}:t4", f"{image}:t5", f"{image}:mine"}

    assert sorted(hygiene.remove_all(docker_client, project)) == [
        f"{image}:t1",
        f"{image}:t4",
        f"{image}:t5",
    ]
    assert {t for img in docker_client.images.list(name=image) for t in img.tags} == {
        f"{image}:mine"
    }
