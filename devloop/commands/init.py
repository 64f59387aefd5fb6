"""`devloop init`: find the Dockerfiles here, infer sync rules from them, write devloop.yaml.

Every inferred rule is printed with the Dockerfile line it came from, and so is every
COPY/ADD source that did not become one (a build input, a URL, a renamed file...).
Nothing existing is overwritten without `force`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from devloop import config
from devloop.errors import EXIT_OK, ConfigError, DevloopError
from devloop.files.dockerignore import ContextFilter
from devloop.files.ignore import ALWAYS_IGNORED
from devloop.infer import dockerfile
from devloop.infer import rules as infer
from devloop.model.project import CONFIG_NAME
from devloop.render.templates import builtin_templates

# `FROM ${BASE_IMAGE}`: the image of service `base`, which devloop passes as that build arg
_IMAGE_ARG = re.compile(r"^\$\{?([A-Za-z0-9_]+)_IMAGE\}?$")
DOCKERFILE_NAMES = ("Dockerfile", "Containerfile", "Dockerfile.*", "*.Dockerfile", "*.dockerfile")
MANIFEST_DIR = "manifests"


@dataclass(frozen=True)
class Found:
    """One service to write: its Dockerfile and what was inferred from it."""

    name: str
    dockerfile: Path
    context: Path
    target: str | None
    inference: infer.Inference
    local_ports: tuple[int, ...]
    requires: tuple[str, ...] = ()

    @property
    def archetype(self) -> str:
        return "web" if self.inference.ports else "worker"


def run(
    directory: Path,
    *,
    force: bool = False,
    manifests: bool = False,
    target: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Write `directory/devloop.yaml` (and, with `manifests`, one template per service)."""
    out = out or sys.stdout
    found = discover(directory, target)
    files = {
        directory / CONFIG_NAME: config_text(_project_name(directory), found, directory, manifests)
    }
    if manifests:
        for f in found:
            template = (builtin_templates() / f"{f.archetype}.yaml.j2").read_text(encoding="utf-8")
            files[directory / MANIFEST_DIR / f"{f.name}.yaml.j2"] = template
    existing = [p for p in files if p.exists()]
    if existing and not force:
        names = ", ".join(str(p.relative_to(directory)) for p in existing)
        raise DevloopError(
            f"not overwriting {names}: it exists already (use --force to replace it)"
        )
    for f in found:
        _explain(f, directory, out)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        out.write(f"wrote {path.relative_to(directory)}\n")
    config.load(directory)  # what init writes must load; a failure here is a bug worth reporting
    out.write(f"{len(found)} service(s); next: `devloop plan` to check, `devloop dev` to start\n")
    return EXIT_OK


def discover(directory: Path, target: str | None = None) -> list[Found]:
    """The Dockerfiles under `directory` as services, each with its inferred sync rules."""
    paths = dockerfiles(directory)
    if not paths:
        raise ConfigError(
            f"no Dockerfile found under {directory} (looked for {', '.join(DOCKERFILE_NAMES)})"
        )
    parsed = [(p, dockerfile.read(p)) for p in paths]
    if target and not any(df.find(target) for _, df in parsed):
        raise ConfigError(f"no Dockerfile under {directory} has a stage named '{target}'")
    names: set[str] = set()
    used_ports: set[int] = set()
    out = []
    for path, df in parsed:
        stage = target if target and df.find(target) else None
        inference = infer.infer(df, path.parent, stage)
        name = _unique(_service_name(directory, path), names)
        ports = tuple(_free_port(p, used_ports) for p in inference.ports)
        out.append(Found(name, path, path.parent, stage, inference, ports))
    return [
        replace(f, requires=_requires(df, f.name, names))
        for f, (_, df) in zip(out, parsed, strict=True)
    ]


def _requires(df: dockerfile.Dockerfile, own: str, names: set[str]) -> tuple[str, ...]:
    """Services whose image a stage starts FROM through a `<NAME>_IMAGE` build arg."""
    found = []
    for stage in df.stages:
        m = _IMAGE_ARG.match(stage.base)
        name = m.group(1).lower().replace("_", "-") if m else None
        if name and name in names and name != own:
            found.append(name)
    return tuple(dict.fromkeys(found))


def dockerfiles(directory: Path) -> list[Path]:
    """Dockerfiles below `directory`, skipping hidden, always-ignored and .dockerignored trees."""
    flt = ContextFilter(directory)
    found = []
    for top, dirs, files in os.walk(directory):
        rel = Path(top).relative_to(directory).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in ALWAYS_IGNORED and not d.startswith(".") and not flt.excluded(prefix + d)
        )
        for f in sorted(files):
            if any(fnmatch.fnmatchcase(f, p) for p in DOCKERFILE_NAMES) and not f.endswith(
                ".dockerignore"
            ):
                found.append(Path(top) / f)
    return found


def config_text(project: str, found: list[Found], root: Path, manifests: bool) -> str:
    """devloop.yaml, with a comment over each sync rule naming the Dockerfile line it came from."""
    lines = [
        "# yaml-language-server: $schema=https://devloop.dev/schema/devloop.json",
        "# Written by `devloop init`. Sync rules come from each Dockerfile's COPY/ADD lines;",
        "# a changed file no rule matches rebuilds the image.",
        f"name: {project}",
        "services:",
    ]
    for f in found:
        lines += _service_lines(f, root, project, manifests)
    return "\n".join(lines) + "\n"


def _service_lines(f: Found, root: Path, project: str, manifests: bool) -> list[str]:
    context = f.context.relative_to(root).as_posix()
    lines = [f"  {f.name}:", f"    image: {project}/{f.name}", f"    context: {_q(context)}"]
    if f.dockerfile.name != "Dockerfile":
        lines.append(f"    dockerfile: {_q(f.dockerfile.name)}")
    if f.target:
        lines.append(f"    target: {_q(f.target)}")
    if manifests:
        lines.append(f"    manifests: [{_q(f'{MANIFEST_DIR}/{f.name}.yaml.j2')}]")
    else:
        lines.append(f"    archetype: {f.archetype}")
    if f.requires:
        lines.append(f"    requires: [{', '.join(f.requires)}]")
    if f.inference.ports:
        pairs = ", ".join(
            _q(f"{local}:{c}") for local, c in zip(f.local_ports, f.inference.ports, strict=True)
        )
        lines.append(f"    ports: [{pairs}]")
    if not f.inference.rules:
        return [
            *lines,
            "    sync: []  # nothing the Dockerfile copies can be synced: every change rebuilds",
        ]
    lines.append("    sync:")
    shown = f.dockerfile.relative_to(root).as_posix()
    for r in f.inference.rules:
        lines.append(f"      # {shown}:{r.origin.ins.line} {r.origin.ins.text[:80]}")
        rule = f"      - {{src: {_q(r.src)}, dest: {_q(r.dest)}"
        lines.append(rule + (", then: restart}" if r.then == "restart" else "}"))
    return lines


def _explain(f: Found, root: Path, out: TextIO) -> None:
    shown = f.dockerfile.relative_to(root).as_posix()
    out.write(
        f"{f.name}: {shown}, {f.inference.stage.shown}"
        + (f", ports {', '.join(map(str, f.inference.ports))}" if f.inference.ports else "")
        + "\n"
    )
    for dep in f.requires:
        out.write(
            f"  {f.name}: requires {dep}: it starts FROM "
            f"${{{dep.upper().replace('-', '_')}_IMAGE}}\n"
        )
    for r in f.inference.rules:
        out.write(f"  {r.explain(f.name, shown)}\n")
    for s in f.inference.skipped:
        out.write(f"  {s.explain(f.name, shown)}\n")
    if f.inference.restart_reason and f.inference.rules:
        out.write(f"  {f.name}: then restart because {f.inference.restart_reason}\n")


def _q(text: str) -> str:
    return json.dumps(text)  # a YAML double-quoted scalar


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")


def _project_name(directory: Path) -> str:
    return _slug(directory.resolve().name) or "app"


def _service_name(root: Path, path: Path) -> str:
    base = path.parent.name if path.parent != root else root.resolve().name
    stem = path.name
    for part in ("Dockerfile", "Containerfile", "dockerfile"):
        stem = stem.replace(part, "")
    return _slug(f"{base}-{stem.strip('.')}") or "app"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    taken.add(candidate)
    return candidate


def _free_port(port: int, used: set[int]) -> int:
    """The local port for container `port`: the same number, unless another service has it."""
    local = port
    while local in used:
        local += 1
    used.add(local)
    return local
