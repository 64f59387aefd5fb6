"""`devloop render`: manifests with pinned image references, for GitOps."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from devloop import config, digest
from devloop.errors import DevloopError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from devloop.render import Manifest, dump, render


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
) -> int:
    project = config.load(directory, profiles)
    unknown = [s for s in [*services, *(overrides or {})] if s not in project.services]
    if unknown:
        print(f"error: unknown service(s): {', '.join(unknown)} (services: {', '.join(project.services)})",
              file=sys.stderr)
        return EXIT_USAGE
    names = project.closure(services)
    refs = digest.image_refs(project, names)
    if build_report:
        refs.update(pinned_refs(build_report))
    refs.update(overrides or {})
    manifests = render(project, refs, [n for n in project.services if n in names])
    if validate:
        from devloop.validate import violations

        problems = list(violations(manifests, kube_version))
        for line in problems:
            print(f"invalid: {line}", file=sys.stderr)
        if problems:
            print(f"error: {len(problems)} schema violation(s)", file=sys.stderr)
            return EXIT_FAILURE
    if dest == "-":
        sys.stdout.write(dump(manifests))
    else:
        write_dir(Path(dest), manifests)
    return EXIT_OK


def pinned_refs(report: Path) -> dict[str, str]:
    """service → `image:tag@sha256:…` from a build report."""
    try:
        data = json.loads(report.read_text())
        entries = data["services"]
        return {name: f"{e['image']}@{e['digest']}" if e.get("digest") else str(e["image"])
                for name, e in entries.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DevloopError(f"{report}: not a devloop build report ({exc})") from None


def write_dir(directory: Path, manifests: Sequence[Manifest]) -> None:
    """One file per object, numbered in apply order: `00-namespace-shop.yaml`."""
    directory.mkdir(parents=True, exist_ok=True)
    width = max(2, len(str(len(manifests))))
    for i, m in enumerate(manifests):
        name = f"{i:0{width}d}-{m.kind.lower()}-{m.name}.yaml"
        (directory / name).write_text(dump([m]))
