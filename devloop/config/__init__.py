"""devloop.yaml → Project: YAML with positions, the schema, profiles, and errors by
file:line:col."""

from __future__ import annotations

from devloop.config.loader import load

__all__ = ["load"]
