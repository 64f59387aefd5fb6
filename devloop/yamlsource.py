"""Read YAML keeping where every key and value stands, and expand ${VAR} in strings."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from devloop.errors import ConfigError

Loc = tuple[str | int, ...]

_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Document:
    """Plain data (dicts, lists, scalars) plus the position of each key and value."""

    path: Path
    data: Any
    keys: dict[Loc, Position] = field(default_factory=dict)
    values: dict[Loc, Position] = field(default_factory=dict)

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
        pos = self.where(loc, key=key)
        where = f"{display_path(self.path)}:{pos.line}:{pos.column}"
        prefix = f"{format_loc(loc)}: " if loc else ""
        return ConfigError(f"{where}: {prefix}{message}")


def display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def format_loc(loc: Loc) -> str:
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
        raise ConfigError(f"{display_path(path)}: no such file (run `devloop init` to write one)") from None
    yaml = YAML(typ="rt")
    try:
        raw = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{display_path(path)}:{line}:{col}: YAML syntax error: {problem}") from None
    doc = Document(path=path, data=None)
    doc.data = _walk(raw, (), doc, env)
    return doc


def _walk(node: Any, loc: Loc, doc: Document, env: Mapping[str, str]) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            kline, kcol = node.lc.key(key)
            vline, vcol = node.lc.value(key)
            sub = (*loc, str(key))
            doc.keys[sub] = Position(kline + 1, kcol + 1)
            doc.values[sub] = Position(vline + 1, vcol + 1)
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


def _interpolate(text: str, loc: Loc, doc: Document, env: Mapping[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] != "" or default is None):
            return env[name]
        if default is not None:
            return default
        raise doc.error(loc, f"environment variable {name} is not set (write ${{{name}:-default}} to give a default)")

    return _VAR.sub(sub, text)
