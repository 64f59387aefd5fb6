"""Read YAML keeping where every key and value stands, and expand ${VAR} in strings."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, merge_attrib
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from devloop.errors import ConfigError
from devloop.model.paths import display_path

Loc = tuple[str | int, ...]

_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Document:
    """Plain data (dicts, lists, scalars) plus the position of each key and value.

    `unset` holds the ${VAR} references whose variable is not set, with where they are:
    the caller decides which of them matter (one inside an inactive profile does not).
    """

    path: Path
    data: Any
    keys: dict[Loc, Position] = field(default_factory=dict)
    values: dict[Loc, Position] = field(default_factory=dict)
    unset: list[tuple[Loc, str]] = field(default_factory=list)

    def where(self, loc: Loc, *, key: bool = False) -> Position:
        """Closest known position for `loc`: the key itself, its value, or a parent."""
        for end in range(len(loc), -1, -1):
            sub = loc[:end]
            table = (self.keys, self.values) if key or end < len(loc) else (self.values, self.keys)
            for t in table:
                if sub in t:
                    return t[sub]
        return Position(1, 1)

    def error(self, loc: Loc, message: str, *, key: bool = False) -> ConfigError:
        """`file:line:col: key.path: message` as a ConfigError."""
        pos = self.where(loc, key=key)
        where = f"{display_path(self.path)}:{pos.line}:{pos.column}"
        prefix = f"{format_loc(loc)}: " if loc else ""
        return ConfigError(f"{where}: {prefix}{message}")

    def unset_error(self, under: Loc = ()) -> ConfigError | None:
        """The error for the first unset variable at or below `under`, if any."""
        for loc, name in self.unset:
            if loc[: len(under)] == under:
                return self.error(
                    loc,
                    f"environment variable {name} is not set"
                    f" (write ${{{name}:-default}} to give a default)",
                )
        return None


def format_loc(loc: Loc) -> str:
    """('services', 'web', 'sync', 0) → 'services.web.sync[0]'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load(path: Path, environ: Mapping[str, str] | None = None) -> Document:
    """Parse `path`, expanding ${VAR} and ${VAR:-default} in every string value."""
    env = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{display_path(path)}: no such file (run `devloop init` to write one)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{display_path(path)}: cannot read: {exc}") from None
    doc = Document(path=path, data=None)
    doc.data = _walk(_parse(path, text), (), doc, env)
    return doc


def _parse(path: Path, text: str) -> Any:
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context_mark:
            ctx = exc.context_mark
            problem += f" ({exc.context} that starts at {ctx.line + 1}:{ctx.column + 1})"
        raise ConfigError(
            f"{display_path(path)}:{line}:{col}: YAML syntax error: {problem}"
        ) from None
    except YAMLError as exc:
        raise ConfigError(
            f"{display_path(path)}: YAML error: {' '.join(str(exc).split())}"
        ) from None


def _walk(node: Any, loc: Loc, doc: Document, env: Mapping[str, str]) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            sub = (*loc, str(key))
            kpos, vpos = _positions(node, key)
            doc.keys[sub], doc.values[sub] = kpos, vpos
            out[str(key)] = _walk(value, sub, doc, env)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, value in enumerate(node):
            line, col = node.lc.item(i)
            doc.values[(*loc, i)] = Position(line + 1, col + 1)
            items.append(_walk(value, (*loc, i), doc, env))
        return items
    if isinstance(node, str):
        return _interpolate(str(node), loc, doc, env)
    return node


def _positions(node: CommentedMap, key: Any) -> tuple[Position, Position]:
    """Where `key` and its value stand; a key merged in with `<<:` stands where it was written."""
    for source in _with_merged(node):
        data = source.lc.data.get(key)
        if data:
            return Position(data[0] + 1, data[1] + 1), Position(data[2] + 1, data[3] + 1)
    here = Position(node.lc.line + 1, node.lc.col + 1)
    return here, here


def _with_merged(node: CommentedMap) -> Iterator[CommentedMap]:
    yield node
    for item in getattr(node, merge_attrib, None) or ():
        source = item[1] if isinstance(item, tuple) else item  # ruamel < 0.19 keeps (index, map)
        if isinstance(source, CommentedMap):
            yield from _with_merged(source)


def _interpolate(text: str, loc: Loc, doc: Document, env: Mapping[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] != "" or default is None):
            return env[name]
        if default is not None:
            return default
        doc.unset.append((loc, name))
        return match.group(0)

    return _VAR.sub(sub, text)
