"""`devloop plan` (and `devloop dev --plan`): what a dev session would watch, sync and rebuild."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from devloop import config
from devloop.build.inputs import cached_inputs
from devloop.commands.common import selected
from devloop.commands.local import plan_text
from devloop.errors import EXIT_OK
from devloop.files.dockerignore import ContextFilter
from devloop.model.events import PlanReport
from devloop.model.project import Service
from devloop.watch.survey import RuleSurvey, ServiceSurvey, Survey, survey


def run(
    directory: Path,
    *,
    profiles: Sequence[str] = (),
    services: Sequence[str] = (),
    output: str = "text",
    out: TextIO | None = None,
    local: LocalPlan | None = None,
) -> int:
    """Print the plan for `services` (all when empty); nothing is built or started."""
    out = out or sys.stdout
    project = config.load(directory, profiles)
    names = selected(project, services)
    result = survey(project, names)
    inputs = {n: input_summary(project.services[n]) for n in project.closure(names)}
    bridged = (
        plan_text(project, local.service, local.command, local.header, local.env_urls)
        if local
        else None
    )
    if output == "json":
        doc = result.as_dict()
        doc["inputs"] = inputs
        if bridged is not None:
            doc["local"] = bridged.splitlines()
        out.write(json.dumps(PlanReport(plan=doc).payload()) + "\n")
    else:
        out.write(text(result))
        out.write(_inputs_text(inputs))
        if bridged is not None:
            out.write("\n" + bridged)
    return EXIT_OK


@dataclass(frozen=True)
class LocalPlan:
    """`plan --local SERVICE`: say what the bridge would do too."""

    service: str
    command: str | None = None
    header: str | None = None
    env_urls: bool = False


def input_summary(svc: Service) -> dict[str, Any]:
    """The files `svc`'s image is built from: count, size, and the globs they come from."""
    reach = cached_inputs(svc)
    files = size = 0
    for rel, st in ContextFilter(svc.context, svc.dockerfile).entries():
        if stat.S_ISREG(st.st_mode) and reach.reaches(rel):
            files += 1
            size += st.st_size
    return {
        "files": files,
        "bytes": size,
        "globs": list(reach.patterns),
        "whole_context": reach.why_whole or None,
    }


def _inputs_text(inputs: dict[str, dict[str, Any]]) -> str:
    lines = ["", "image inputs (only these rebuild a service or change its tag):"]
    for name, i in inputs.items():
        where = (
            f"the whole context ({i['whole_context']})"
            if i["whole_context"]
            else ", ".join(i["globs"]) or "nothing from the context"
        )
        lines.append(f"  {name}: {i['files']} file(s), {_size(i['bytes'])}: {where}")
    return "\n".join(lines) + "\n"


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
    example = f" (e.g. {r.example})" if r.example else ""
    return f"{r.src} -> {r.dest}{then}: {r.files} file(s) now{example}"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
