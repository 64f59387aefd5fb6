"""An image's inputs: the context paths its Dockerfile can reach.

The COPY/ADD sources of every stage that feeds the target stage (its FROM parents and the
stages it copies from with `--from`, followed back), as context-relative paths, directories
or globs. A change to any other file in the context cannot change the image, so it neither
rebuilds the service nor changes its tag. When the Dockerfile cannot be followed (a source
that uses an unknown variable, a `RUN --mount` of the context, a custom builder without
`inputs:`), the whole context counts, as before.
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass

from devloop.errors import ConfigError
from devloop.infer.dockerfile import (
    Dockerfile,
    Stage,
    Unresolved,
    arg_defaults,
    copy_args,
    env_pairs,
    substitute,
)
from devloop.infer.dockerfile import (
    read as read_dockerfile,
)
from devloop.model.project import Service

WHOLE = "."


@dataclass(frozen=True)
class InputSet:
    """Context-relative patterns (`.` means the whole context) and why when it is whole."""

    patterns: tuple[str, ...]
    why_whole: str = ""

    @property
    def whole(self) -> bool:
        return WHOLE in self.patterns

    def reaches(self, rel: str) -> bool:
        """Whether context-relative `rel` ('/'-separated) can be copied into the image."""
        return self.whole or any(_reaches(p, rel) for p in self.patterns)

    def may_hold(self, rel_dir: str) -> bool:
        """Whether directory `rel_dir` may hold an input (a walk must descend into it)."""
        if self.whole or rel_dir in ("", "."):
            return True
        return any(_reaches(p, rel_dir) or _prefix_of(rel_dir, p) for p in self.patterns)


def _reaches(pattern: str, rel: str) -> bool:
    """`rel` is `pattern`, lies below it, or below a path it matches (Docker's COPY globs
    match whole path segments with Go's filepath.Match, and a matched directory is copied)."""
    segs = pattern.split("/")
    parts = rel.split("/")
    if len(parts) < len(segs):
        return False
    if not any(c in pattern for c in "*?["):
        return parts[: len(segs)] == segs
    return all(fnmatch.fnmatchcase(p, s) for p, s in zip(parts, segs, strict=False))


def _prefix_of(rel_dir: str, pattern: str) -> bool:
    """Directory `rel_dir` is a leading part of `pattern` (its inputs lie deeper)."""
    d, segs = rel_dir.split("/"), pattern.split("/")
    return len(d) < len(segs) and all(
        fnmatch.fnmatchcase(p, s) for p, s in zip(d, segs, strict=False)
    )


def image_inputs(svc: Service) -> InputSet:
    """The context paths `svc`'s image can be built from."""
    if svc.builder:
        return InputSet((WHOLE,), "a custom builder: devloop cannot see what it reads")
    try:
        df = read_dockerfile(svc.dockerfile, svc.build_args)
        target = df.stage(svc.target)
    except ConfigError as exc:
        return InputSet((WHOLE,), str(exc))
    found: list[str] = []
    try:
        _collect(df, target, dict(svc.build_args), found, set())
    except _Whole as exc:
        return InputSet((WHOLE,), str(exc))
    return InputSet(tuple(dict.fromkeys(found)))


class _Whole(Exception):
    """The Dockerfile reads something devloop cannot name: the whole context counts."""


def _collect(
    df: Dockerfile, stage: Stage, build_args: dict[str, str], out: list[str], seen: set[int]
) -> None:
    if stage.index in seen:
        return
    seen.add(stage.index)
    parent = df.parent(stage)
    if parent is not None:
        _collect(df, parent, build_args, out, seen)
    scope: dict[str, str] = {}
    for ins in stage.instructions:
        if ins.cmd == "ARG":
            for name, default in arg_defaults(ins.args).items():
                value = build_args.get(
                    name, default if default is not None else df.global_args.get(name)
                )
                if value is not None:
                    scope[name] = value
        elif ins.cmd == "ENV":
            for name, value in env_pairs(ins.args).items():
                scope[name] = value
        elif ins.cmd == "RUN" and "--mount" in ins.args:
            for word in ins.args.split():
                if word.startswith("--mount") and "type=bind" in word and "from=" not in word:
                    raise _Whole(f"line {ins.line}: RUN --mount=type=bind of the context")
        elif ins.cmd in ("COPY", "ADD") and not ins.heredoc:
            ca = copy_args(ins)
            if ca is None:
                continue
            if "from" in ca.flags:
                source = df.find(ca.flags["from"])
                if source is not None and source.index < stage.index:
                    _collect(df, source, build_args, out, seen)
                continue
            for raw in ca.sources:
                if ins.cmd == "ADD" and ("://" in raw or raw.startswith("git@")):
                    continue
                try:
                    src = substitute(raw, scope)
                except Unresolved as exc:
                    raise _Whole(
                        f"line {ins.line}: {raw} uses ${exc.name}, which has no value"
                    ) from None
                rel = posixpath.normpath(src.lstrip("/")) if src.strip("/") else WHOLE
                if rel == ".." or rel.startswith("../"):
                    continue  # outside the context: docker build fails on it anyway
                out.append(rel)


_MEMO: dict[tuple[object, ...], InputSet] = {}


def cached_inputs(svc: Service) -> InputSet:
    """`image_inputs`, parsed again only when the Dockerfile or the build settings change."""
    try:
        st = svc.dockerfile.stat()
        stamp: tuple[int, ...] = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
    except OSError:
        stamp = ()
    key = (
        str(svc.dockerfile),
        str(svc.context),
        svc.target,
        tuple(sorted(svc.build_args.items())),
        svc.builder,
        stamp,
    )
    hit = _MEMO.get(key)
    if hit is None:
        if len(_MEMO) > 256:
            _MEMO.clear()
        hit = _MEMO[key] = image_inputs(svc)
    return hit
