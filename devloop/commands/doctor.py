"""`devloop doctor`: check the engine, the cluster, the registry, inotify and the images; say how to
fix."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from devloop import config, doctor
from devloop.config.discover import config_file
from devloop.doctor import Check
from devloop.errors import EXIT_FAILURE, EXIT_OK, ConfigError
from devloop.model.events import CheckResult
from devloop.model.project import Project

MARKS = {"ok": "✓", "fail": "✗", "warn": "!", "skip": "-"}


def run(
    directory: Path,
    *,
    profiles: tuple[str, ...] = (),
    context: str | None = None,
    output: str = "text",
    out: TextIO | None = None,
) -> int:
    """Run every check, print each as it finishes; exit 1 when one failed."""
    out = out or sys.stdout
    checks = []
    for check in _checks(directory, profiles, context):
        checks.append(check)
        if output == "json":
            out.write(json.dumps(CheckResult(**asdict(check)).payload()) + "\n")
        else:
            out.write(_line(check))
        out.flush()
    failed = [c for c in checks if c.status == "fail"]
    if output != "json":
        out.write(
            f"{len(failed)} problem(s) found\n"
            if failed
            else "everything devloop needs is in place\n"
        )
    return EXIT_FAILURE if failed else EXIT_OK


def _checks(directory: Path, profiles: tuple[str, ...], context: str | None) -> Iterator[Check]:
    project, problem = _project(directory, profiles, context)
    if problem:
        yield problem
    engine, client = doctor.docker_engine()
    try:
        yield engine
        yield doctor.kube(project, context)
        yield doctor.cluster_cli(project, context)
        yield from doctor.registry(project)
        yield doctor.inotify(project)
        if project is not None and client is None:
            yield Check("images", "skip", "needs the Docker engine")
        elif project is not None and client is not None:
            yield from doctor.images(project, client)
    finally:
        if client is not None:
            client.close()


def _project(
    directory: Path, profiles: tuple[str, ...], context: str | None
) -> tuple[Project | None, Check | None]:
    if not config_file(directory).is_file():
        return None, Check(
            "devloop.yaml",
            "skip",
            f"none in {directory}: only the machine is checked",
            "`devloop init` writes one from your Dockerfiles",
        )
    try:
        project = config.load(directory, profiles, kube_context=context)
    except ConfigError as exc:
        return None, Check(
            "devloop.yaml", "fail", str(exc), "fix the file; `devloop render` shows the same error"
        )
    return project, Check(
        "devloop.yaml", "ok", f"project {project.name}, {len(project.services)} service(s)"
    )


def _line(c: Check) -> str:
    text = f"{MARKS[c.status]} {c.name}: {c.detail}\n"
    return text + (f"    fix: {c.fix}\n" if c.fix and c.status in ("fail", "warn") else "")
