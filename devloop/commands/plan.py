"""`devloop plan` (and `devloop dev --plan`): what a dev session would watch, sync and rebuild."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from devloop import config
from devloop.commands.common import selected
from devloop.errors import EXIT_OK
from devloop.model.events import PlanReport
from devloop.watch.survey import RuleSurvey, ServiceSurvey, Survey, survey


def run(
    directory: Path,
    *,
    profiles: Sequence[str] = (),
    services: Sequence[str] = (),
    output: str = "text",
    out: TextIO | None = None,
) -> int:
    """Print the plan for `services` (all when empty); nothing is built or started."""
    out = out or sys.stdout
    project = config.load(directory, profiles)
    result = survey(project, selected(project, services))
    if output == "json":
        out.write(json.dumps(PlanReport(plan=result.as_dict()).payload()) + "\n")
    else:
        out.write(text(result))
    return EXIT_OK


def text(s: Survey) -> str:
    """The plan for people: one section per question, numbers first."""
    profiles = f" (profiles: {', '.join(s.profiles)})" if s.profiles else ""
    lines = [
        f"plan for {s.project}{profiles}: nothing is started",
        "",
        f"watch: {s.watched_files} files, {_size(s.watched_bytes)}, in {s.watched_dirs} "
        f"directories "
        f"under {len(s.roots)} root(s)",
    ]
    lines += [f"  {r}" for r in s.roots]
    if s.ignored:
        lines.append("ignored (largest trees, no watch, never synced):")
        lines += [f"  {t.path}: {t.files} files, {_size(t.bytes)}" for t in s.ignored]
    for svc in s.services:
        lines += ["", *_service(svc)]
    limit = str(s.watches_limit) if s.watches_limit is not None else "unknown (no inotify here)"
    lines += ["", f"inotify: {s.watches_needed} watches needed, limit {limit}"]
    if s.warnings:
        lines += ["", f"warnings ({len(s.warnings)}):", *(f"  ! {w}" for w in s.warnings)]
    return "\n".join(lines) + "\n"


def _service(svc: ServiceSurvey) -> list[str]:
    ignore = "" if svc.dockerignore else ", no .dockerignore"
    lines = [
        f"{svc.name}: context {svc.context} ({svc.context_files} files, "
        f"{_size(svc.context_bytes)}{ignore})"
    ]
    lines += [f"  sync {_rule(r)}" for r in svc.sync] or ["  sync: no rules, every change rebuilds"]
    examples = ", ".join(svc.rebuild_examples) + (
        " ..." if svc.rebuild_files > len(svc.rebuild_examples) else ""
    )
    lines.append(
        f"  rebuild on a change to any of {svc.rebuild_files} other file(s)"
        + (f": {examples}" if examples else "")
        + ", or the Dockerfile"
    )
    if svc.requires:
        lines.append(
            f"  rebuild when {', '.join(svc.requires)} is rebuilt (its image is a build arg)"
        )
    return lines


def _rule(r: RuleSurvey) -> str:
    then = "" if r.then == "none" else f", then {r.then}"
    return f"{r.src} -> {r.dest}{then}: {r.files} file(s) now"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
