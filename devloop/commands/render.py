"""`devloop render`: manifests with pinned image references, for GitOps."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from devloop import config
from devloop.build import digest
from devloop.build import report as build_report_
from devloop.errors import EXIT_OK, ConfigError, DevloopError
from devloop.model.manifest import Manifest
from devloop.render.templates import dump, render

# What `devloop[validate]` brings (render.validate imports them); not installed by default.
VALIDATE_MODULES = frozenset({"kubernetes_validate", "jsonschema", "referencing"})

# What write_dir names its files; only these are cleared from DIR before a new render.
_WRITTEN = re.compile(r"^\d{2,}-[a-z0-9]+-[a-z0-9.-]+\.yaml$")


class SchemaViolations(DevloopError):
    """--validate found objects the Kubernetes schemas reject: exit 1, one line per violation."""


def run(
    directory: Path,
    *,
    profiles: Sequence[str] = (),
    dest: str = "-",
    overrides: Mapping[str, str] | None = None,
    build_report: Path | None = None,
    validate: bool = False,
    kube_version: str | None = None,
    services: Sequence[str] = (),
    here: Path | None = None,
) -> int:
    """Render `services` (all when empty) to stdout (`dest` '-') or one file per object in `dest`.

    Relative `dest` and `build_report` paths are taken from `here` (the `-C` directory, default
    `directory`), as `-C` promises.
    """
    project = config.load(directory, profiles)
    here = here or directory
    overrides = dict(overrides or {})
    unknown = [s for s in [*services, *overrides] if s not in project.services]
    if unknown:
        raise ConfigError(
            f"unknown service(s): {', '.join(unknown)} (services: {', '.join(project.services)})"
        )
    refs = digest.image_refs(project, project.closure(services))
    if build_report:
        refs.update(build_report_.read_pins(here / build_report))
    refs.update(overrides)
    manifests = render(
        project, refs, [n for n in project.services if not services or n in services]
    )
    if validate:
        check(manifests, kube_version)
    if dest == "-":
        sys.stdout.write(dump(manifests))
    else:
        write_dir(here / dest, manifests)
    return EXIT_OK


def check(manifests: Sequence[Manifest], kube_version: str | None) -> None:
    """Raise SchemaViolations listing every violation, with template, kind/name and field."""
    try:  # loads the schemas: only when asked for
        from devloop.render.validate import violations
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in VALIDATE_MODULES:
            raise
        raise ConfigError(
            f"render --validate needs devloop's 'validate' extra ({exc.name} is not installed): "
            "pip install 'devloop[validate]' (with pipx: pipx install --force 'devloop[validate]')"
        ) from None

    problems = list(violations(manifests, kube_version))
    if problems:
        lines = "".join(f"\n  {p}" for p in problems)
        raise SchemaViolations(f"{len(problems)} schema violation(s):{lines}")


def write_dir(directory: Path, manifests: Sequence[Manifest]) -> None:
    """One file per object, numbered in apply order (`00-namespace-shop.yaml`); older ones go."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            if _WRITTEN.match(old.name):
                old.unlink()
        width = max(2, len(str(len(manifests))))
        for i, m in enumerate(manifests):
            (directory / f"{i:0{width}d}-{m.kind.lower()}-{m.name}.yaml").write_text(dump([m]))
    except OSError as exc:
        raise DevloopError(f"writing manifests into {directory}: {exc}") from None
