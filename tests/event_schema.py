"""Every JSON line a real devloop process prints is checked against `devloop schema --events`."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema

from devloop.output import events_schema

VIOLATIONS: list[str] = []
"""Lines that broke the schema during the current test; conftest fails the test on any."""


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = events_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check(event: Any) -> None:
    """Record `event` (one parsed line) when it is not a document of the event schema."""
    errors = list(_validator().iter_errors(event))
    if errors:
        kind = event.get("event") if isinstance(event, dict) else None
        # oneOf hides the reason: validate against the type the line claims to be
        definition = events_schema()["$defs"].get(kind)
        reasons = (
            [e.message for e in jsonschema.Draft202012Validator(definition).iter_errors(event)]
            if definition
            else [f"unknown event type {kind!r}"]
        )
        VIOLATIONS.append(f"{json.dumps(event)[:300]}: {'; '.join(reasons) or errors[0].message}")


def check_stream(text: str) -> None:
    """Check each line of a `--output json` stdout that parses as a JSON object."""
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event:
            check(event)
