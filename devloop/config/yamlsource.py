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
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None
    except OSError as exc:
        raise ConfigError(f"{display_path(path)}: cannot read: {exc}") from None
    doc = Document(path=path, data=None)
    doc.data = _Walker(doc, env).walk(_parse(path, text), ())
    return doc


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> ConfigError:
    """`file:line:col: not UTF-8` with the column counted in characters, as an editor shows it."""
    before = exc.object[: exc.start]
    line = before.count(b"\n") + 1
    start = before.rfind(b"\n") + 1
    col = len(before[start:].decode("utf-8", errors="replace")) + 1
    return ConfigError(
        f"{display_path(path)}:{line}:{col}: not UTF-8: byte 0x{exc.object[exc.start]:02x}"
        " cannot start or continue a character here (save the file as UTF-8)"
    )


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


# Nodes an alias may bring in, all aliases together: far above any real devloop.yaml (a few
# hundred nodes), far below what a "billion laughs" document expands to.
ALIAS_BUDGET = 10_000


class _Walker:
    """Plain data out of the parsed tree; every node an alias repeats counts against a budget,
    so a small file cannot expand into gigabytes (ruamel shares aliased nodes while parsing:
    only this copy would blow up)."""

    def __init__(self, doc: Document, env: Mapping[str, str]) -> None:
        self.doc, self.env = doc, env
        self.seen: set[int] = set()
        self.expanded = 0
        self.alias: Loc | None = None  # the outermost alias being expanded
        self.anchor = ""

    def walk(self, node: Any, loc: Loc) -> Any:
        if not isinstance(node, CommentedMap | CommentedSeq):
            return self._leaf(node, loc)
        outer = self.alias
        if id(node) in self.seen and outer is None:
            self.alias = loc  # an alias: where it is written
            self.anchor = getattr(node.anchor, "value", None) or ""
        self.seen.add(id(node))
        try:
            return self._map(node, loc) if isinstance(node, CommentedMap) else self._seq(node, loc)
        finally:
            self.alias = outer

    def _count(self) -> None:
        if self.alias is None:
            return
        self.expanded += 1
        if self.expanded > ALIAS_BUDGET:
            # ruamel places an alias where its anchor is: name the key that holds the alias
            alias = self.alias
            key = next(alias[:n] for n in range(len(alias), 0, -1) if alias[:n] in self.doc.keys)
            pos = self.doc.keys[key]
            raise ConfigError(
                f"{display_path(self.doc.path)}:{pos.line}:{pos.column}: {format_loc(alias)}: "
                f"alias *{self.anchor} takes the document past {ALIAS_BUDGET} values"
                " (a YAML bomb?): write the repeated part out or nest fewer aliases"
            )

    def _map(self, node: CommentedMap, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            self._count()
            sub = (*loc, str(key))
            self.doc.keys[sub], self.doc.values[sub] = _positions(node, key)
            out[str(key)] = self.walk(value, sub)
        return out

    def _seq(self, node: CommentedSeq, loc: Loc) -> list[Any]:
        items = []
        for i, value in enumerate(node):
            self._count()
            line, col = node.lc.item(i)
            self.doc.values[(*loc, i)] = Position(line + 1, col + 1)
            items.append(self.walk(value, (*loc, i)))
        return items

    def _leaf(self, node: Any, loc: Loc) -> Any:
        if isinstance(node, str):
            return _interpolate(str(node), loc, self.doc, self.env)
        return node


def _positions(node: CommentedMap, key: Any) -> tuple[Position, Position]:
    """Where `key` and its value stand; a key merged in with `<<:` stands where it was written."""
    for source in _with_merged(node):
        data = (source.lc.data or {}).get(key)  # None in a mapping made only of `<<:`
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
