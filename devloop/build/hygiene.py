"""Image hygiene: keep the newest few devloop-made tags per image, remove the rest.

Only tags of a service's repository on images labelled with the project are touched: an image
the user built or pulled never is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import docker

from devloop.model.manifest import LABEL_PART_OF
from devloop.model.project import Project


def _tags(client: docker.DockerClient, project: str, repository: str) -> list[tuple[str, str]]:
    """(created, tag) of `repository`'s devloop-made tags, newest first."""
    found = []
    for image in client.images.list(
        name=repository, filters={"label": f"{LABEL_PART_OF}={project}"}
    ):
        for tag in image.tags:
            if tag.rpartition(":")[0] == repository:
                found.append((str(image.attrs.get("Created", "")), tag))
    return sorted(found, reverse=True)


def _remove(client: docker.DockerClient, tags: Iterable[str]) -> list[str]:
    removed = []
    for tag in tags:
        try:
            client.images.remove(tag)  # untags; the image goes with its last tag
        except docker.errors.APIError:
            continue  # a container still uses it (another session, --keep): leave it
        removed.append(tag)
    return removed


def prune(
    client: docker.DockerClient, project: Project, in_use: Mapping[str, str], keep: int
) -> list[str]:
    """Remove all but the newest `keep` tags of each service in `in_use` (service → the ref
    that runs, which always stays); the removed tags."""
    old: list[str] = []
    for name, ref in in_use.items():
        tags = [t for _, t in _tags(client, project.name, project.services[name].image)]
        kept = {ref, *[t for t in tags if t != ref][: max(0, keep - 1)]}
        old += [t for t in tags if t not in kept]
    return _remove(client, old)


def remove_all(client: docker.DockerClient, project: Project) -> list[str]:
    """Every devloop-made tag of the project's images (`devloop delete --images`)."""
    return _remove(
        client,
        [t for s in project.services.values() for _, t in _tags(client, project.name, s.image)],
    )
