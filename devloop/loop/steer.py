"""Commands a person sends a running dev session (keys, the dashboard), and what they need."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from devloop.errors import EXIT_USAGE, DevloopError
from devloop.loop.plan import ServicePlan
from devloop.model.manifest import ANNOTATION_RESTARTED, Manifest
from devloop.model.project import Service

Command = Literal["rebuild", "restart", "trigger", "pause", "resume"]
COMMANDS: tuple[str, ...] = get_args(Command)
PER_SERVICE = frozenset({"rebuild", "restart", "trigger"})  # the others are session-wide


class RequestError(DevloopError):
    """A steering command the session cannot take: an unknown command or service."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Request:
    """One steering command; `service` None means every service."""

    command: Command
    service: str | None = None


def check(command: str, service: str | None, services: Iterable[str]) -> Request:
    """The request, or RequestError saying what is wrong with it."""
    if command not in COMMANDS:
        raise RequestError(f"unknown command '{command}' (commands: {', '.join(COMMANDS)})")
    known = list(services)
    if service is not None:
        if command not in PER_SERVICE:
            raise RequestError(f"'{command}' applies to the whole session, not to one service")
        if service not in known:
            raise RequestError(f"unknown service '{service}' (services: {', '.join(known)})")
    return Request(command, service)  # type: ignore[arg-type]


def stamped(manifests: Iterable[Manifest], stamps: Mapping[str, str]) -> list[Manifest]:
    """Pod templates of the services in `stamps` annotated with their stamp: a new stamp
    recreates the containers (a new rollout on Kubernetes) even when the image is the same."""
    out = []
    for m in manifests:
        stamp = stamps.get(m.service)
        if stamp and m.pod_templates():
            m = Manifest(copy.deepcopy(m.obj), m.service, m.template)
            for pod in m.pod_templates():
                meta = pod.setdefault("metadata", {})
                meta.setdefault("annotations", {})[ANNOTATION_RESTARTED] = stamp
        out.append(m)
    return out


def touched(svc: Service, sp: ServicePlan) -> set[Path]:
    """The changed paths a service's plan acts on (absolute)."""
    syncs = [*sp.syncs, *(sp.rebuild.superseded if sp.rebuild else ())]
    rels = [f.rel for s in syncs for f in (*s.copy, *s.delete)]
    rels += list(sp.rebuild.paths) if sp.rebuild else []
    out = {svc.context / r for r in rels}  # an absolute `r` (a Dockerfile elsewhere) stays itself
    return out | (set(sp.redeploy.templates) if sp.redeploy else set())
