"""Infer sync rules, ports and the after-sync action from a Dockerfile's COPY/ADD lines.

`copies.follow` says where each context path lands in the deployed stage; this turns
that into sync rules, leaving out build inputs (requirements.txt, package.json,
lockfiles, files a RUN consumes) and dockerignored files, so that changing one of
them rebuilds the image instead of syncing.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from devloop.files.dockerignore import ContextFilter
from devloop.files.ignore import ALWAYS_IGNORED
from devloop.infer.copies import Origin, Skipped, follow
from devloop.infer.dockerfile import Dockerfile, Stage

# Files that describe how to build rather than what runs: a change must rebuild.
BUILD_INPUTS = (
    "requirements*.txt",
    "constraints*.txt",
    "Pipfile",
    "Pipfile.lock",
    "poetry.lock",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "go.mod",
    "go.sum",
    "Cargo.toml",
    "Cargo.lock",
    "Gemfile",
    "Gemfile.lock",
    "composer.json",
    "composer.lock",
    "pom.xml",
    "build.gradle*",
    "Dockerfile*",
    "*.Dockerfile",
    "*.dockerfile",
    ".dockerignore",
    "devloop.yaml",
)
# Processes that load code once at start: a synced file only takes effect after a restart.
_RESTARTS = re.compile(
    r"^(python[0-9.]*|node|nodejs|ruby|perl|java|deno|bun|gunicorn|flask|rackup|php)$"
)


@dataclass(frozen=True)
class Rule:
    src: str  # glob relative to the context
    dest: str  # directory in the container
    then: str  # none | restart
    origin: Origin
    notes: tuple[str, ...] = ()

    def explain(self, service: str, dockerfile: str) -> str:
        via = "".join(f" via stage '{v}'" for v in self.origin.via)
        notes = "".join(f"; {n}" for n in self.notes)
        then = " then restart" if self.then == "restart" else ""
        return (
            f"{service}: sync {self.src} -> {self.dest}{then} (from "
            f"{dockerfile}:{self.origin.ins.line} "
            f"{self.origin.ins.text} in {self.origin.stage.shown}{via}{notes})"
        )


@dataclass(frozen=True)
class Inference:
    stage: Stage
    rules: tuple[Rule, ...]
    skipped: tuple[Skipped, ...]
    ports: tuple[int, ...]
    command: str | None  # the first word of CMD/ENTRYPOINT, when known
    restart_reason: str | None  # why `then: restart` was chosen, if it was


def infer(
    df: Dockerfile,
    context: Path,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
) -> Inference:
    """The sync rules for the image `df` builds from `context` (stage `target`, or the last)."""
    stage = df.stage(target)
    walk = follow(df, context, stage, build_args or {})
    restart = _restart_reason(walk.state.command, walk.state.env)
    inputs = _Inputs(context, walk.inputs)
    rules: dict[tuple[str, str], Rule] = {}
    skipped = list(walk.skipped)
    for o in walk.origins:
        made, skips = _to_rules(o, inputs, "restart" if restart else "none")
        skipped.extend(skips)
        for r in made:
            rules.setdefault((r.src, r.dest), r)
    command = walk.state.command[0] if walk.state.command else None
    return Inference(
        stage,
        tuple(rules.values()),
        tuple(skipped),
        tuple(dict.fromkeys(walk.state.ports)),
        command,
        restart,
    )


class _Inputs:
    """The context's files, with the ones that must rebuild (build inputs, dockerignored) marked."""

    def __init__(self, context: Path, named: Mapping[str, str]) -> None:
        self.context = context
        self.reasons: dict[str, str] = dict(named)
        self.files: list[str] = []
        flt = ContextFilter(context)
        for top, dirs, files in os.walk(context):
            rel_top = Path(top).relative_to(context).as_posix()
            prefix = "" if rel_top == "." else rel_top + "/"
            keep = []
            for d in sorted(dirs):
                if d in ALWAYS_IGNORED:
                    continue
                if flt.excluded(prefix + d):
                    self.reasons.setdefault(prefix + d, "excluded by .dockerignore")
                else:
                    keep.append(d)
            dirs[:] = keep
            for f in sorted(files):
                rel = prefix + f
                self.files.append(rel)
                if flt.excluded(rel):
                    self.reasons.setdefault(rel, "excluded by .dockerignore")
                elif any(fnmatch.fnmatchcase(f, p) for p in BUILD_INPUTS):
                    self.reasons.setdefault(rel, "a build input: changing it rebuilds")

    def left_out_below(self, rel: str) -> list[str]:
        prefix = "" if rel == "." else rel + "/"
        return sorted(p for p in self.reasons if p.startswith(prefix))

    def children(self, rel: str) -> tuple[list[str], list[str]]:
        """Files and directories directly in context directory `rel`."""
        base = self.context / rel
        files: list[str] = []
        dirs: list[str] = []
        for entry in sorted(os.scandir(base), key=lambda e: e.name):
            if entry.name in ALWAYS_IGNORED:
                continue
            child = entry.name if rel == "." else f"{rel}/{entry.name}"
            (dirs if entry.is_dir() else files).append(child)
        return files, dirs


def _to_rules(o: Origin, inputs: _Inputs, then: str) -> tuple[list[Rule], list[Skipped]]:
    consumed = _consumed(o.src, inputs)
    if consumed is not None and o.kind != "file":
        return [], [Skipped(o.src, inputs.reasons[consumed], o.ins, o.stage)]
    if o.kind == "file" and consumed is not None and consumed != o.src:
        return [], [Skipped(o.src, inputs.reasons[consumed], o.ins, o.stage)]
    if o.kind == "file":
        if o.src in inputs.reasons:
            return [], [Skipped(o.src, inputs.reasons[o.src], o.ins, o.stage)]
        if posixpath.basename(o.src) != posixpath.basename(o.dest):
            return [], [
                Skipped(o.src, f"renamed to {o.dest}: a sync rule keeps file names", o.ins, o.stage)
            ]
        return [Rule(o.src, posixpath.dirname(o.dest) or "/", then, o, o.notes)], []
    if o.kind == "glob":
        return _glob_rules(o, inputs, then)
    left = inputs.left_out_below(o.src)
    if not left:
        return [Rule(_tree(o.src), o.dest, then, o, o.notes)], []
    notes = (*o.notes, f"left out: {_summary(left, inputs)}")
    return [replace(r, notes=notes) for r in _expand(o, o.src, o.dest, inputs, then)], []


def _consumed(src: str, inputs: _Inputs) -> str | None:
    """`src`, or the directory or glob it came through, when a RUN read it during the build."""
    for key, reason in inputs.reasons.items():
        if not reason.startswith("a build input: RUN"):
            continue
        if src == key or src.startswith(key.rstrip("/") + "/") or key == ".":
            return key
        if any(c in key for c in "*?[") and fnmatch.fnmatchcase(src, key):
            return key
    return None


def _glob_rules(o: Origin, inputs: _Inputs, then: str) -> tuple[list[Rule], list[Skipped]]:
    matches = [
        f
        for f in inputs.files
        if fnmatch.fnmatchcase(f, o.src) and "/" not in f[len(_dir(o.src)) :]
    ]
    bad = [f for f in matches if f in inputs.reasons]
    if not bad:
        return [Rule(o.src, o.dest, then, o, o.notes)], []
    notes = (*o.notes, f"left out: {_summary(bad, inputs)}")
    return [Rule(f, o.dest, then, o, notes) for f in matches if f not in inputs.reasons], []


def _dir(glob: str) -> str:
    d = posixpath.dirname(glob)
    return d + "/" if d else ""


def _expand(o: Origin, rel: str, dest: str, inputs: _Inputs, then: str) -> list[Rule]:
    """Rules covering context directory `rel` (landing in `dest`) minus what must rebuild."""
    if not inputs.left_out_below(rel) and rel not in inputs.reasons:
        return [Rule(_tree(rel), dest, then, o)]
    files, dirs = inputs.children(rel)
    out: list[Rule] = []
    by_ext: dict[str, list[str]] = {}
    for f in files:
        by_ext.setdefault(posixpath.splitext(f)[1], []).append(f)
    for ext, group in by_ext.items():
        clean = [f for f in group if f not in inputs.reasons]
        if ext and clean == group and len(group) > 1:
            out.append(Rule(f"{_dir(group[0])}*{ext}", dest, then, o))
        else:
            out.extend(Rule(f, dest, then, o) for f in clean)
    for d in dirs:
        if d not in inputs.reasons:
            out.extend(_expand(o, d, posixpath.join(dest, posixpath.basename(d)), inputs, then))
    return out


def _tree(rel: str) -> str:
    return "**" if rel == "." else f"{rel}/**"


def _summary(paths: list[str], inputs: _Inputs) -> str:
    shown = [f"{p} ({inputs.reasons[p].split(':')[0]})" for p in paths[:4]]
    more = f" and {len(paths) - 4} more" if len(paths) > 4 else ""
    return ", ".join(shown) + more


def _restart_reason(command: list[str] | None, env: Mapping[str, str]) -> str | None:
    if not command:
        return None
    exe = posixpath.basename(command[0])
    if not _RESTARTS.match(exe) or _reloads(command, env):
        return None
    return f"the image runs {exe}, which reads its code once at start"


def _reloads(command: list[str], env: Mapping[str, str]) -> bool:
    """The command watches its own files (uvicorn --reload, flask --debug, FLASK_DEBUG=1): a
    restart after each sync would only restart it twice."""
    if any(w in ("--reload", "--watch", "-r", "--debug") for w in command):
        return True
    flask = "flask" in command[:3] or (len(command) > 2 and command[1:3] == ["-m", "flask"])
    debug = env.get("FLASK_DEBUG", "").lower() in ("1", "true") or env.get("FLASK_ENV") == (
        "development"
    )
    return flask and debug
