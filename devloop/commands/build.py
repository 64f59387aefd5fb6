"""`devloop build`: build (or skip) the images, push or load them, and report what was built."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from devloop import build_report, config
from devloop.build import Builder
from devloop.build_engine import connect
from devloop.errors import EXIT_OK, ConfigError
from devloop.events import Emit, JsonSink, TextSink
from devloop.project import Project
from devloop.runtime.factory import target_of


def run(
    directory: Path,
    *,
    profiles: Sequence[str] = (),
    services: Sequence[str] = (),
    push: bool = False,
    fmt: str = "text",
    report: Path | None = None,
) -> int:
    project = config.load(directory, profiles)
    unknown = [s for s in services if s not in project.services]
    if unknown:
        raise ConfigError(
            f"unknown service(s): {', '.join(unknown)} (services: {', '.join(project.services)})"
        )
    emit: Emit = JsonSink() if fmt == "json" else TextSink()
    client = connect()
    try:
        builder = Builder(
            project, client, emit, push=True if push else None, kube_context=kube_context(project)
        )
        results = builder.build(services)
    finally:
        client.close()
    if report is not None:
        build_report.write(report, results)
    if fmt == "json":
        sys.stdout.write(
            json.dumps({"event": "build_report", **build_report.report(results)}) + "\n"
        )
    else:
        for r in results.values():
            sys.stdout.write(f"{r.service} {r.ref}{'@' + r.digest if r.digest else ''}\n")
    return EXIT_OK


def kube_context(project: Project) -> str | None:
    """The cluster images go to when not pushing: None for the Docker target."""
    if target_of(project, None) != "kubernetes":
        return None
    return project.kube_context or config.current_kube_context(os.environ)
