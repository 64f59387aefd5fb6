"""`dev --local SERVICE --print-env` and the `--local` part of `plan`: what a bridge would do."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from devloop import config
from devloop.bridge import hosts
from devloop.bridge.env import LocalEnv, local_env, peers
from devloop.errors import EXIT_OK, ConfigError
from devloop.model.project import Project
from devloop.render.templates import render
from devloop.runtime.factory import target_of


def _env(
    project: Project, service: str, context: str | None = None, *, cluster: bool = False
) -> tuple[LocalEnv, list[str]]:
    if service not in project.services:
        raise ConfigError(
            f"unknown service '{service}'; devloop.yaml defines {', '.join(project.services)}"
        )
    manifests = render(project, {})
    peer_lines = [f"{p.service}:{p.port}" for p in peers(manifests, service)]
    tables = None
    if cluster and target_of(project, context) == "kubernetes":
        from devloop.runtime.kubernetes.client import connect
        from devloop.runtime.kubernetes.envsources import cluster_sources

        found = connect(project, context)
        tables = cluster_sources(found.rest, found.namespace)
    return local_env(project, manifests, service, tables), peer_lines


def print_env(
    directory: Path,
    service: str,
    *,
    profiles: Sequence[str] = (),
    show_secrets: bool = False,
    context: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Print the service's pod env as `export` lines (Secrets masked unless `show_secrets`).
    On Kubernetes, references the rendered objects do not answer are read from the cluster."""
    project = config.load(directory, profiles, kube_context=context)
    env, _ = _env(project, service, context, cluster=True)
    (out or sys.stdout).write(env.exports(show_secrets))
    return EXIT_OK


def plan_text(
    project: Project, service: str, command: str | None, header: str | None, env_urls: bool
) -> str:
    """What `dev --local service` would do, for people."""
    env, peer_lines = _env(project, service)
    svc = project.services[service]
    command = command or (svc.local.command if svc.local else None)
    secrets = len(env.secret)
    ports = sorted({p.target for p in env.services} | set(env.ports))
    names = ", ".join(f"{p.service}:{p.port}" for p in env.services) or "no Service"
    lines = [
        f"local {service}: run {command or '(no command: give --command or local.command)'!s}",
        f"  cwd {svc.local.cwd if svc.local else project.root}",
        f"  env: {len(env.env)} variable(s) from {env.workload}"
        + (f", {secrets} from Secrets" if secrets else ""),
        f"  listens on: {', '.join(map(str, ports)) or 'nothing declared'}",
        f"  incoming: a relay with labels {dict(env.labels)} answers as {names}"
        + (
            f"; only HTTP/1.x requests with header {header} reach the local process"
            if header
            else "; every connection reaches the local process"
        ),
        f"  outgoing: {', '.join(peer_lines) or 'no other Service'}"
        + (
            " through /etc/hosts entries on loopback addresses"
            if hosts.writable()
            else " on loopback ports (no /etc/hosts: needs root)"
        )
        + (", and <SERVICE>_HOST/_PORT variables" if env_urls else ""),
    ]
    return "\n".join(lines) + "\n"
