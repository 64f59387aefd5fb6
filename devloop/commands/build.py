"""`devloop build`: build (or skip) the images, push or load them, and report what was built."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from devloop import config
from devloop.build import report as build_report
from devloop.build.builder import Builder
from devloop.clients.docker import connect
from devloop.errors import EXIT_OK, ConfigError
from devloop.model.events import BuildReport, Emit
from devloop.output import JsonSink, TextSink
from devloop.runtime.factory import image_target


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
    # text progress goes to stderr: stdout carries the result lines
    emit: Emit = JsonSink() if fmt == "json" else TextSink(sys.stderr)
    client = connect()
    try:
        builder = Builder(
            project,
            client,
            emit,
            push=True if push else None,
            target=image_target(project, None),
        )
        results = builder.build(services)
    finally:
        client.close()
    if report is not None:
        build_report.write(report, results)
    if fmt == "json":
        emit(BuildReport(**build_report.report(results)))
    else:
        for r in results.values():
            sys.stdout.write(f"{r.service} {r.ref}{'@' + r.digest if r.digest else ''}\n")
    return EXIT_OK
