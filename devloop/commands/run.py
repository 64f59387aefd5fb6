"""`devloop run`: one shot for CI — build, push, deploy, wait until healthy, or explain why not."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from devloop import config
from devloop.build.builder import Builder
from devloop.clients.docker import connect
from devloop.commands.common import new_session_id, selected
from devloop.errors import EXIT_OK
from devloop.model.events import Deployed, Ready
from devloop.output import sink
from devloop.render.templates import render
from devloop.runtime.factory import open_runtime


def run(
    directory: Path,
    *,
    profiles: Sequence[str] = (),
    services: Sequence[str] = (),
    output: str = "text",
    context: str | None = None,
    timeout: float | None = None,
    push: bool | None = None,
) -> int:
    project = config.load(directory, profiles, kube_context=context)
    names = project.closure(selected(project, services))
    # templates first, with placeholder image references: exit 2 means nothing was built
    render(project, {n: f"{project.services[n].image}:placeholder" for n in names}, names)
    emit = sink(output)
    client = connect()
    runtime = open_runtime(
        project, client, session=new_session_id(), dev=False, context_flag=context
    )
    built = Builder(project, client, emit, push=push, target=runtime.images).build(names)
    refs = {
        n: (f"{b.ref}@{b.digest}" if b.digest and b.pushed else b.ref) for n, b in built.items()
    }
    manifests = render(project, refs, names)
    runtime.deploy(manifests, names)
    # a build-only service (an image others use) is neither deployed nor ready
    deployed = [n for n in names if any(m.service == n for m in manifests)]
    for n in deployed:
        emit(
            Deployed(service=n, image=refs[n], objects=sum(1 for m in manifests if m.service == n))
        )
    runtime.wait_ready(names, timeout or project.rollout_timeout)
    urls = runtime.published_urls()
    for n in deployed:
        emit(Ready(service=n, urls=urls.get(n, [])))
    return EXIT_OK
