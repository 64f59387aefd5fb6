"""`devloop delete`: remove every container, network or object devloop made for this project."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from devloop import config
from devloop.bridge import hosts
from devloop.build import hygiene
from devloop.clients.docker import connect
from devloop.commands.common import new_session_id
from devloop.errors import EXIT_OK
from devloop.model.events import Info
from devloop.output import sink
from devloop.runtime.factory import open_runtime


def run(
    directory: Path,
    *,
    profiles: Sequence[str] = (),
    output: str = "text",
    context: str | None = None,
    images: bool = False,
) -> int:
    project = config.load(directory, profiles, kube_context=context)
    emit = sink(output)
    runtime = open_runtime(
        project, connect(), session=new_session_id(), dev=False, context_flag=context
    )
    cluster = getattr(runtime, "cluster", None)
    if cluster is not None:  # a relay Deployment a killed `dev --local` left is no applied object
        from devloop.runtime.kubernetes.relay import recover

        recover(cluster.rest, cluster.namespace, project.name)
    removed = runtime.delete_all()  # on Docker a relay goes with the rest (the project's labels)
    if hosts.writable() and (blocks := hosts.remove(project.name)):
        emit(Info(f"removed {blocks} /etc/hosts block(s) a `dev --local` of {project.name} left"))
    emit(Info(f"deleted {removed} object(s) of project {project.name} from {runtime.name}"))
    if images:
        client = connect()
        try:
            tags = hygiene.remove_all(client, project)
        finally:
            client.close()
        emit(Info(f"removed {len(tags)} image tag(s) of project {project.name}"))
    return EXIT_OK
