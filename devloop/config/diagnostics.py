"""Turn a pydantic validation failure of devloop.yaml into one `file:line:col: key.path:
message`."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from devloop.config import yamlsource
from devloop.config.schema import PATTERN_HINTS, ConfigSpec
from devloop.config.yamlsource import Document, Loc
from devloop.errors import ConfigError
from devloop.model.paths import display_path

# Parts pydantic adds to a location to name the union member or dict key it was checking.
_UNION_TAGS = {"ExecThen", "str", "list[str]", "int", "float"}
_TYPE_ERRORS = {
    "string_type",
    "dict_type",
    "list_type",
    "int_parsing",
    "int_type",
    "float_parsing",
    "float_type",
    "bool_parsing",
    "bool_type",
    "model_type",
    "model_attributes_type",
    "literal_error",
    "int_from_float",
}


def translate(doc: Document, errors: Sequence[ErrorDetails], overlay: Loc = ()) -> ConfigError:
    """The most useful of `errors`, positioned in `doc` (inside `overlay` when a profile wrote
    it)."""
    err = _pick(errors)
    loc, is_key = _clean(tuple(err["loc"]))
    loc = _in_overlay(doc, loc, overlay)
    kind = err["type"]
    if kind == "extra_forbidden":
        return _error(
            doc, loc, f"unknown key '{loc[-1]}'{_suggest(str(loc[-1]), loc, overlay)}", parent=True
        )
    if kind == "missing":
        return _error(doc, loc, f"missing required key '{loc[-1]}'", parent=True)
    if is_key:
        return _error(doc, loc, f"key '{loc[-1]}' {_key_text(err)}", parent=True)
    return _error(doc, loc, _text(err))


def _pick(errors: Sequence[ErrorDetails]) -> ErrorDetails:
    """The first error, unless a more telling one sits in the same mapping (a typo over its gap)."""
    first = errors[0]
    scope = _clean(tuple(first["loc"]))[0][:-1]
    near = [e for e in errors if _clean(tuple(e["loc"]))[0][: len(scope)] == scope]
    return min(near, key=_rank)


def _rank(err: ErrorDetails) -> int:
    order = {"extra_forbidden": 0, "missing": 1}
    tagged = any(
        isinstance(p, str) and (p.startswith("literal[") or p in _UNION_TAGS) for p in err["loc"]
    )
    return order.get(err["type"], 3 if tagged else 2)


def _clean(loc: Loc) -> tuple[Loc, bool]:
    """Drop union member names; say whether the error is about a mapping key rather than a value."""
    is_key = bool(loc) and loc[-1] == "[key]"
    kept = tuple(
        p
        for p in loc
        if not (isinstance(p, str) and (p.startswith("literal[") or p in _UNION_TAGS))
    )
    return (kept[:-1] if is_key else kept), is_key


def _in_overlay(doc: Document, loc: Loc, overlay: Loc) -> Loc:
    """`loc` inside the profile when the profile wrote any part of it, else `loc` as it is."""
    if overlay and any((*overlay, *loc[:end]) in doc.keys for end in range(len(loc), 0, -1)):
        return (*overlay, *loc)
    return loc


def _error(doc: Document, loc: Loc, text: str, *, parent: bool = False) -> ConfigError:
    """At the key itself when it is in the file; otherwise at the mapping that should hold it."""
    shown = loc[:-1] if parent else loc
    if loc in doc.keys or loc in doc.values:
        pos = doc.where(loc, key=parent)
    else:
        pos = doc.where(shown, key=True)
    prefix = f"{yamlsource.format_loc(shown)}: " if shown else ""
    return ConfigError(f"{display_path(doc.path)}:{pos.line}:{pos.column}: {prefix}{text}")


def _key_text(err: ErrorDetails) -> str:
    if err["type"] == "string_too_long":
        return _too_long(err)
    return _pattern_text(err)


def _too_long(err: ErrorDetails) -> str:
    most = (err.get("ctx") or {}).get("max_length")
    return f"is {len(str(err.get('input')))} characters long, more than the {most} allowed"


def _text(err: ErrorDetails) -> str:
    ctx = err.get("ctx") or {}
    if err["type"] == "string_pattern_mismatch":
        return f"{err.get('input')!r} {_pattern_text(err)}"
    if err["type"] == "string_too_long":
        return f"{err.get('input')!r} {_too_long(err)}"
    if err["type"] == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] in _TYPE_ERRORS:
        msg = f"{msg} (got {_describe(err.get('input'))})"
    return msg


def _pattern_text(err: ErrorDetails) -> str:
    pattern = str((err.get("ctx") or {}).get("pattern", ""))
    return (
        f"is not {PATTERN_HINTS[pattern]}"
        if pattern in PATTERN_HINTS
        else f"does not match {pattern}"
    )


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}" if value is not None else "nothing"


def _suggest(key: str, loc: Loc, overlay: Loc) -> str:
    allowed = keys_at(
        loc[len(overlay) : -1] if loc[: len(overlay)] == overlay and overlay else loc[:-1]
    )
    hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if hint:
        return f" (did you mean '{hint[0]}'?)"
    return f" (allowed: {', '.join(sorted(allowed))})" if allowed else ""


def keys_at(loc: Loc) -> list[str]:
    """The keys devloop.yaml allows in the mapping at `loc` (empty when any key goes)."""
    model: Any = ConfigSpec
    for part in loc:
        model = _descend(model, part)
        if model is None:
            return []
    return (
        list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
    )


def _descend(tp: Any, part: str | int) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if isinstance(part, int) or part not in tp.model_fields:
            return None
        return _unwrap(tp.model_fields[part].annotation)
    origin = typing.get_origin(tp)
    if origin in (list, dict):
        return _unwrap(typing.get_args(tp)[-1])
    return None


def _unwrap(tp: Any) -> Any:
    """The model or container inside Optional[...] / Annotated[...] / a union with a model in it."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            inner = _unwrap(arg)
            if (isinstance(inner, type) and issubclass(inner, BaseModel)) or typing.get_origin(
                inner
            ) in (list, dict):
                return inner
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    return tp
