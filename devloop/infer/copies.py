"""Where a Dockerfile's COPY/ADD sources land in the image a stage builds.

Files are followed from the build context into the stage: through WORKDIR, ENV and
ARG, into a stage's parent stage (`FROM builder AS runtime`), and back through
`COPY --from=<stage>` to where that stage copied them from the context.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from devloop.infer.dockerfile import (
    Dockerfile,
    Instruction,
    Stage,
    Unresolved,
    arg_defaults,
    copy_args,
    env_pairs,
    substitute,
)

_ARCHIVES = (
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz2",
    ".tar.xz",
    ".txz",
    ".tar.zst",
    ".gz",
    ".bz2",
    ".xz",
)
Kind = Literal["dir", "file", "glob"]
NOT_FOUND = "not found in the build context"


@dataclass(frozen=True)
class Origin:
    """Context path `src` ends up at `dest` in the deployed image.

    dir: the directory's contents land in directory `dest`; glob: each match lands in
    directory `dest`; file: the file lands at path `dest`.
    """

    src: str
    kind: Kind
    dest: str
    ins: Instruction
    stage: Stage
    via: tuple[str, ...] = ()  # stages the files were copied through with --from
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A source that does not become a sync rule, and why."""

    source: str
    reason: str
    ins: Instruction
    stage: Stage

    def explain(self, service: str, dockerfile: str) -> str:
        return (
            f"{service}: no sync for {self.source}: {self.reason} "
            f"(from {dockerfile}:{self.ins.line} {self.ins.text} in {self.stage.shown})"
        )


@dataclass
class State:
    workdir: str = "/"
    workdir_set: bool = False  # False: the base image's WORKDIR, unknown, taken as /
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    ports: list[int] = field(default_factory=list)
    command: list[str] | None = None

    def scope(self) -> dict[str, str]:
        return {**self.args, **self.env}  # ENV wins over ARG of the same name, as in docker build

    def inherit(self) -> State:
        return State(
            self.workdir,
            self.workdir_set,
            dict(self.env),
            {},
            set(self.dirs),
            list(self.ports),
            self.command,
        )


@dataclass
class Trace:
    """Origins collected while following one stage (and the stages it draws from)."""

    origins: list[Origin] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)  # context path → why it is a build input
    state: State = field(default_factory=State)


def follow(df: Dockerfile, context: Path, stage: Stage, build_args: Mapping[str, str]) -> Trace:
    """Every context path that lands in `stage`'s image, what was skipped, and the stage's state."""
    return _Follower(df, context, dict(build_args)).stage(stage)


class _Follower:
    def __init__(self, df: Dockerfile, context: Path, build_args: dict[str, str]) -> None:
        self.df, self.context, self.build_args = df, context, build_args
        self._memo: dict[int, Trace] = {}

    def stage(self, stage: Stage) -> Trace:
        if stage.index not in self._memo:
            self._memo[stage.index] = self._follow(stage)
        return self._memo[stage.index]

    def _follow(self, stage: Stage) -> Trace:
        parent = self.df.parent(stage)
        if parent is not None:
            up = self.stage(parent)
            walk = Trace(list(up.origins), list(up.skipped), dict(up.inputs), up.state.inherit())
        else:
            walk = Trace()
        for pos, ins in enumerate(stage.instructions):
            self._step(walk, stage, ins, stage.instructions[pos + 1 :])
        return walk

    def _step(
        self, walk: Trace, stage: Stage, ins: Instruction, rest: tuple[Instruction, ...]
    ) -> None:
        st = walk.state
        if ins.cmd == "ARG":
            for name, default in arg_defaults(ins.args).items():
                value = self.build_args.get(
                    name, default if default is not None else self.df.global_args.get(name)
                )
                if value is not None:
                    st.args[name] = _try(value, st.scope())
        elif ins.cmd == "ENV":
            for name, value in env_pairs(ins.args).items():
                st.env[name] = _try(value, st.scope())
        elif ins.cmd == "WORKDIR":
            st.workdir = posixpath.normpath(
                posixpath.join(st.workdir, _try(ins.args.strip(), st.scope()))
            )
            st.workdir_set = True
            st.dirs.add(st.workdir)
        elif ins.cmd == "EXPOSE":
            st.ports.extend(_ports(ins.args, st.scope()))
        elif ins.cmd in ("CMD", "ENTRYPOINT"):
            st.command = _command(ins.args) or st.command
        elif ins.cmd in ("COPY", "ADD"):
            self._copy(walk, stage, ins, _consumer(rest))

    def _copy(
        self, walk: Trace, stage: Stage, ins: Instruction, consumer: Instruction | None
    ) -> None:
        ca = copy_args(ins)
        if ins.heredoc or ca is None:
            walk.skipped.append(
                Skipped(ins.args, "inline content, nothing from the build context", ins, stage)
            )
            return
        st = walk.state
        if "parents" in ca.flags:
            walk.skipped.append(
                Skipped(" ".join(ca.sources), "--parents is not followed", ins, stage)
            )
            return
        try:
            dest = substitute(ca.dest, st.scope())
        except Unresolved as exc:
            walk.skipped.append(
                Skipped(
                    " ".join(ca.sources),
                    f"the destination uses ${exc.name}, which has no value here",
                    ins,
                    stage,
                )
            )
            return
        target = posixpath.normpath(posixpath.join(st.workdir, dest))
        into_dir = (
            dest.endswith("/") or len(ca.sources) > 1 or target in st.dirs or dest in (".", "./")
        )
        notes = (
            ()
            if dest.startswith("/") or st.workdir_set
            else ("assumes the base image's WORKDIR is /",)
        )
        for raw in ca.sources:
            try:
                src = substitute(raw, st.scope())
            except Unresolved as exc:
                walk.skipped.append(
                    Skipped(raw, f"uses ${exc.name}, which has no value here", ins, stage)
                )
                continue
            found = self._source(walk, stage, ins, ca.flags, src, target, into_dir)
            walk.origins.extend(replace(o, notes=o.notes + notes) for o in found)
            for o in found:
                if consumer is None or "from" in ca.flags:
                    continue
                if o.kind == "file":
                    walk.inputs.setdefault(
                        o.src, f"a build input: RUN at line {consumer.line} follows its COPY"
                    )
                elif _reads(consumer, dest, target):
                    walk.inputs.setdefault(
                        o.src, f"a build input: RUN at line {consumer.line} reads what it copied"
                    )
                if o.kind != "file":
                    st.dirs.add(target)
        if into_dir:
            st.dirs.add(target)

    def _source(
        self,
        walk: Trace,
        stage: Stage,
        ins: Instruction,
        flags: Mapping[str, str],
        src: str,
        target: str,
        into_dir: bool,
    ) -> list[Origin]:
        if ins.cmd == "ADD" and (
            re.match(r"^[a-z][a-z0-9+.-]*://|^git@", src) or src.endswith(_ARCHIVES)
        ):
            what = "a URL" if "://" in src or src.startswith("git@") else "an archive ADD unpacks"
            walk.skipped.append(Skipped(src, f"{what}: not a file that can be synced", ins, stage))
            return []
        if "from" in flags:
            return self._from_stage(walk, stage, ins, flags["from"], src, target, into_dir)
        return self._from_context(walk, stage, ins, src, target, into_dir)

    def _from_context(
        self, walk: Trace, stage: Stage, ins: Instruction, src: str, target: str, into_dir: bool
    ) -> list[Origin]:
        rel = posixpath.normpath(src.lstrip("/")) if src.strip("/") else "."
        if rel == ".." or rel.startswith("../"):
            walk.skipped.append(Skipped(src, "outside the build context", ins, stage))
            return []
        if any(c in rel for c in "*?["):
            if any(c in posixpath.dirname(rel) for c in "*?["):
                walk.skipped.append(
                    Skipped(src, "a wildcard in a directory part is not followed", ins, stage)
                )
                return []
            return [Origin(rel, "glob", target, ins, stage)]
        path = self.context / rel
        if path.is_dir():
            return [Origin(rel, "dir", target, ins, stage)]
        if path.is_file():
            dest = posixpath.join(target, posixpath.basename(rel)) if into_dir else target
            return [Origin(rel, "file", dest, ins, stage)]
        walk.skipped.append(Skipped(src, NOT_FOUND, ins, stage))
        return []

    def _from_stage(
        self,
        walk: Trace,
        stage: Stage,
        ins: Instruction,
        ref: str,
        src: str,
        target: str,
        into_dir: bool,
    ) -> list[Origin]:
        ref = _try(ref, walk.state.scope())
        source = self.df.find(ref)
        if source is None or source.index >= stage.index:
            walk.skipped.append(
                Skipped(src, f"copied from image '{ref}', not from the build context", ins, stage)
            )
            return []
        inner = self.stage(source)
        walk.inputs.update({k: v for k, v in inner.inputs.items() if k not in walk.inputs})
        path = posixpath.normpath(posixpath.join("/", src))
        found = [
            m
            for o in inner.origins
            if (m := _remap(o, path, target, into_dir, self.context)) is not None
        ]
        if not found:
            walk.skipped.append(
                Skipped(
                    src,
                    f"{source.shown} did not copy it from the build context "
                    "(made by a RUN?): changes rebuild",
                    ins,
                    stage,
                )
            )
        return [replace(o, ins=ins, stage=stage, via=(*o.via, source.label)) for o in found]


def _remap(o: Origin, path: str, target: str, into_dir: bool, context: Path) -> Origin | None:
    """Where `o` lands after `COPY --from=<its stage> path target`, or None if `path` misses it."""
    if o.kind in ("dir", "glob"):
        if o.dest == path:
            return replace(o, dest=target)
        if _under(o.dest, path):
            return replace(o, dest=posixpath.join(target, posixpath.relpath(o.dest, path)))
        if o.kind == "dir" and _under(path, o.dest):
            rel = posixpath.normpath(posixpath.join(o.src, posixpath.relpath(path, o.dest)))
            if (context / rel).is_dir():
                return replace(o, src=rel, dest=target)
            if (context / rel).is_file():
                dest = posixpath.join(target, posixpath.basename(rel)) if into_dir else target
                return replace(o, src=rel, kind="file", dest=dest)
        return None
    if o.dest == path:
        return replace(
            o, dest=posixpath.join(target, posixpath.basename(path)) if into_dir else target
        )
    if _under(o.dest, path):
        return replace(o, dest=posixpath.join(target, posixpath.relpath(o.dest, path)))
    return None


def _under(path: str, top: str) -> bool:
    return top == "/" or path.startswith(top.rstrip("/") + "/")


def _consumer(rest: tuple[Instruction, ...]) -> Instruction | None:
    """The RUN right after this COPY (and any COPYs next to it): it probably reads what they
    copied."""
    for ins in rest:
        if ins.cmd == "RUN":
            return ins
        if ins.cmd not in ("COPY", "ADD", "ENV", "ARG", "WORKDIR"):
            return None
    return None


_NOT_READING = ("chown", "chmod", "chgrp", "ls", "mkdir", "touch", "true", "echo")


def _reads(run: Instruction, dest: str, target: str) -> bool:
    """Whether RUN `run` names the directory a COPY wrote (`dest` as written, or `target`):
    `COPY wheels/ /tmp/wheels/` then `RUN pip install /tmp/wheels/*`; `COPY . .` then
    `RUN go build .`. A RUN that only changes owners or modes does not count."""
    words = [w for w in re.split(r"[\s;&|<>()=\"']+", run.args) if w]
    if not words or posixpath.basename(words[0]) in _NOT_READING:
        return False
    names = {target.rstrip("/") or "/"}
    written = posixpath.normpath(dest) if dest.strip() else "."
    names.add(written)
    if written == ".":
        names.add("./")
    for word in words:
        for name in names:
            bare = word.removeprefix("./") if name != "." and word != "./" else word
            if word == name or bare == name or bare.startswith(name.rstrip("/") + "/"):
                return True
            if name in (".", "./") and word in (".", "./", "./..."):
                return True
    return False


def _ports(args: str, scope: Mapping[str, str]) -> list[int]:
    out = []
    for word in args.split():
        number, _, proto = _try(word, scope).partition("/")
        if number.isdigit() and proto in ("", "tcp"):
            out.append(int(number))
    return out


def _command(args: str) -> list[str] | None:
    """CMD/ENTRYPOINT as words; `sh -c "python app.py"` looks through the shell."""
    text = args.strip()
    words: list[str] | None = None
    if text.startswith("["):
        try:
            parsed = json.loads(text)
            words = [str(w) for w in parsed] if isinstance(parsed, list) else None
        except ValueError:
            words = None
    if words is None:
        words = text.split()
    if len(words) >= 3 and posixpath.basename(words[0]) in ("sh", "bash") and words[1] == "-c":
        words = words[2].split()
    while words and (words[0] == "exec" or posixpath.basename(words[0]) == "env"):
        words = words[1:]
    return words or None


def _try(word: str, scope: Mapping[str, str]) -> str:
    """`word` substituted where it can be; as written when a variable has no value."""
    try:
        return substitute(word, scope)
    except Unresolved:
        return word
