"""Dockerfile parsing: stages, instructions with line numbers, and the variables in scope.

Enough of the Dockerfile grammar for `devloop init` to follow files from the build
context into the deployed stage: parser directives (`# escape=`), comments, line
continuations, heredocs (skipped), `FROM ... AS name`, flags (`--from=`, `--chown=`),
JSON and shell forms, and `$VAR` / `${VAR:-default}` substitution from ARG and ENV.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devloop.errors import ConfigError

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<-?\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\1")
_VAR = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)


class Unresolved(ValueError):
    """A `$VAR` with no value in scope: the path cannot be known without building."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True)
class Instruction:
    line: int  # 1-based line where the instruction starts
    cmd: str  # upper case: FROM, COPY, ...
    args: str  # everything after the keyword, continuations joined
    heredoc: bool = False  # has an inline heredoc body (COPY <<EOF / RUN <<EOF)

    @property
    def text(self) -> str:
        """The instruction on one line, as a person would quote it."""
        return f"{self.cmd} {' '.join(self.args.split())}".strip()


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None  # the `AS name`, lower case
    base: str  # the image or stage it starts FROM, variables substituted where possible
    line: int
    instructions: tuple[Instruction, ...]

    @property
    def label(self) -> str:
        return self.name if self.name is not None else str(self.index)

    @property
    def shown(self) -> str:
        """How messages name it: `stage 'runtime'`, or `stage 0` when it has no name."""
        return f"stage '{self.name}'" if self.name is not None else f"stage {self.index}"


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    stages: tuple[Stage, ...]
    global_args: Mapping[str, str | None] = field(
        default_factory=dict
    )  # ARGs before the first FROM

    def stage(self, ref: str | None) -> Stage:
        """The stage named (or numbered) `ref`, or the last one when `ref` is None."""
        if ref is None:
            return self.stages[-1]
        found = self.find(ref)
        if found is None:
            names = ", ".join(s.label for s in self.stages)
            raise ConfigError(f"{self.path}: no stage '{ref}' (stages: {names})")
        return found

    def find(self, ref: str) -> Stage | None:
        """An earlier stage by name or index, or None (`ref` is then an image)."""
        for s in self.stages:
            if s.name == ref.lower() or (ref.isdigit() and s.index == int(ref)):
                return s
        return None

    def parent(self, stage: Stage) -> Stage | None:
        """The earlier stage `stage` starts FROM, if it starts from one."""
        found = self.find(stage.base)
        return found if found is not None and found.index < stage.index else None


def read(path: Path, build_args: Mapping[str, str] | None = None) -> Dockerfile:
    """Parse the Dockerfile at `path`; `build_args` resolve the ARGs in FROM lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return parse(text, path, build_args)


def parse(
    text: str, path: Path = Path("Dockerfile"), build_args: Mapping[str, str] | None = None
) -> Dockerfile:
    """Split `text` into stages of instructions."""
    escape = _escape_directive(text)
    instructions = list(_instructions(text.splitlines(), escape))
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    current: list[Instruction] = []
    head: Instruction | None = None
    for ins in instructions:
        if ins.cmd == "FROM":
            if head is not None:
                stages.append(_stage(len(stages), head, current, global_args, build_args))
            head, current = ins, []
        elif head is None:
            if ins.cmd == "ARG":
                global_args.update(arg_defaults(ins.args))
        else:
            current.append(ins)
    if head is None:
        raise ConfigError(f"{path}: no FROM instruction, this is not a Dockerfile")
    stages.append(_stage(len(stages), head, current, global_args, build_args))
    return Dockerfile(path=path, stages=tuple(stages), global_args=global_args)


def _stage(
    index: int,
    head: Instruction,
    body: list[Instruction],
    global_args: Mapping[str, str | None],
    build_args: Mapping[str, str] | None,
) -> Stage:
    words = [w for w in head.args.split() if not w.startswith("--")]
    scope = {**{k: v for k, v in global_args.items() if v is not None}, **(build_args or {})}
    try:
        base = substitute(words[0], scope) if words else ""
    except Unresolved:
        base = words[0]
    name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
    return Stage(index=index, name=name, base=base, line=head.line, instructions=tuple(body))


def _escape_directive(text: str) -> str:
    """The escape character: `\\` unless an `# escape=` directive sets it before anything else."""
    for line in text.splitlines():
        m = _DIRECTIVE.match(line.strip())
        if not m:
            break
        if m.group(1).lower() == "escape" and m.group(2) in ("\\", "`"):
            return m.group(2)
    return "\\"


def _instructions(lines: list[str], escape: str) -> Iterator[Instruction]:
    """Logical instructions: comments dropped, continuations joined, heredoc bodies skipped."""
    i = 0
    while i < len(lines):
        start, parts = -1, list[str]()
        while i < len(lines):
            raw = lines[i]
            i += 1
            if raw.strip().startswith("#") or (parts and not raw.strip()):
                continue  # comments and blank lines may sit inside a continuation
            if start < 0 and raw.strip():
                start = i - 1  # the line the instruction starts on, not a comment above it
            stripped = raw.rstrip()
            if stripped.endswith(escape):
                parts.append(stripped[:-1])
                continue
            parts.append(stripped)
            break
        joined = " ".join(p.strip() for p in parts if p.strip())
        if not joined:
            continue
        cmd, _, args = joined.partition(" ")
        delimiters = (
            [m.group(2) for m in _HEREDOC.finditer(args)]
            if cmd.upper() in ("RUN", "COPY", "ADD")
            else []
        )
        for word in delimiters:  # the body lines are data, not instructions
            while i < len(lines) and lines[i].strip() != word:
                i += 1
            i += 1
        yield Instruction(
            line=start + 1, cmd=cmd.upper(), args=args.strip(), heredoc=bool(delimiters)
        )


def arg_defaults(args: str) -> dict[str, str | None]:
    """`ARG A=1 B` → {A: '1', B: None}."""
    out: dict[str, str | None] = {}
    for word in _words(args):
        name, sep, value = word.partition("=")
        out[name] = value if sep else None
    return out


def env_pairs(args: str) -> dict[str, str]:
    """`ENV A=1 B="two words"` or the legacy `ENV A value with spaces`."""
    words = _words(args)
    if words and "=" not in words[0]:
        name, _, value = args.strip().partition(" ")
        return {name: value.strip()}
    return {name: value for name, _, value in (w.partition("=") for w in words)}


def _words(args: str) -> list[str]:
    try:
        return shlex.split(args, posix=True)
    except ValueError:  # an unbalanced quote: fall back to plain words
        return args.split()


def substitute(word: str, scope: Mapping[str, str]) -> str:
    """`word` with `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alt}` replaced from `scope`.

    Raises Unresolved naming the first variable that has no value and no default.
    """

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(4)
        op, alt = m.group(2), m.group(3) or ""
        value = scope.get(name)
        if op in (":-", "-"):
            return value if value or (op == "-" and value is not None) else substitute(alt, scope)
        if op in (":+", "+"):
            return substitute(alt, scope) if value else ""
        if value is None:
            raise Unresolved(name)
        return value

    return _VAR.sub(one, word)


@dataclass(frozen=True)
class CopyArgs:
    """A COPY or ADD split into flags, sources and destination (variables not yet substituted)."""

    flags: Mapping[str, str]  # --from, --chown, --chmod, --link ('' when bare)
    sources: tuple[str, ...]
    dest: str


def copy_args(ins: Instruction) -> CopyArgs | None:
    """The parts of a COPY/ADD, or None when it names fewer than a source and a destination."""
    rest = ins.args
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        name, _, value = word[2:].partition("=")
        flags[name.lower()] = value
        rest = rest.lstrip()
    if rest.startswith("["):
        try:
            parts = json.loads(rest)
        except ValueError:
            parts = None
        if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
            return CopyArgs(flags, tuple(parts[:-1]), parts[-1]) if len(parts) >= 2 else None
    words = [_unquote(w) for w in rest.split()]
    return CopyArgs(flags, tuple(words[:-1]), words[-1]) if len(words) >= 2 else None


def _unquote(word: str) -> str:
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "'\"":
        return word[1:-1]
    return word
