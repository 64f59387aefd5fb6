"""The build report: which image reference and digest each service was built as (JSON,
version 1)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devloop.build.builder import BuiltImage
from devloop.errors import DevloopError
from devloop.model.paths import display_path

VERSION = 1


def report(results: Mapping[str, BuiltImage]) -> dict[str, Any]:
    """`{"version": 1, "services": {name: {image, digest, pushed, skipped}}}`;
    `render --build-report` reads it."""
    return {
        "version": VERSION,
        "services": {
            name: {"image": r.ref, "digest": r.digest, "pushed": r.pushed, "skipped": r.skipped}
            for name, r in results.items()
        },
    }


def write(path: Path, results: Mapping[str, BuiltImage]) -> None:
    try:
        path.write_text(json.dumps(report(results), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise DevloopError(f"cannot write the build report to {path}: {exc}") from None


def read_pins(report: Path) -> dict[str, str]:
    """service → `image:tag@sha256:…` from a build report `write` made."""
    shown = display_path(report)
    try:
        text = report.read_text(encoding="utf-8")
    except OSError as exc:
        raise DevloopError(f"cannot read the build report {shown}: {exc.strerror}") from None
    try:
        data = json.loads(text)
        entries = data["services"]
        return {
            name: f"{e['image']}@{e['digest']}" if e.get("digest") else str(e["image"])
            for name, e in entries.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DevloopError(
            f"{shown}: not a devloop build report ({type(exc).__name__}: {exc})"
        ) from None
