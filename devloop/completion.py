"""Shell completion of service and profile names, read from devloop.yaml without validating it.

Completion runs on every Tab press, so it reads the YAML and nothing else, and a
broken or missing file completes nothing instead of printing an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from devloop.model.project import CONFIG_NAME


def services(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Service names from devloop.yaml, minus those already on the command line."""
    given = set(ctx.params.get(param.name or "", None) or ())
    return _items(_section(ctx, "services"), incomplete, given)


def profiles(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Profile names from devloop.yaml."""
    return _items(_section(ctx, "profiles"), incomplete, set())


def _items(section: dict[str, Any], incomplete: str, given: set[str]) -> list[CompletionItem]:
    return [
        CompletionItem(name)
        for name in section
        if name.startswith(incomplete) and name not in given
    ]


def _section(ctx: click.Context, key: str) -> dict[str, Any]:
    directory = ctx.find_root().params.get("directory") or Path(".")
    try:
        from ruamel.yaml import YAML

        data = YAML(typ="safe").load((Path(directory) / CONFIG_NAME).read_text(encoding="utf-8"))
        section = data.get(key) if isinstance(data, dict) else None
    except Exception:  # a half-written file while the user types: complete nothing
        return {}
    return {str(k): v for k, v in section.items()} if isinstance(section, dict) else {}
