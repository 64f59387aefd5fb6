"""The sync payload: which container paths a change touches, and the bytes that apply it.

A `Batch` maps local files to container paths and lists container paths to delete;
`batch_for` builds one from a sync rule and changed paths, refusing anything that
would land outside the rule's `dest`. `encode` reads the files once and produces a
`Payload`: the newline-separated delete list and an uncompressed tar of the additions,
framed for the agent by `Payload.frame`. Problems that affect one file (a symlink out of
the context, a FIFO, a file that vanished or cannot be read) become warnings, never
exceptions: the rest of the batch still syncs and the session reports them.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from devloop.errors import SyncError
from devloop.model.project import Service, SyncRule


@dataclass(frozen=True)
class Batch:
    """Files to add (absolute container path → local absolute path) and container paths to delete.

    Keyed by container path: two rules may copy one local file to two places.
    """

    adds: Mapping[str, str]
    deletes: tuple[str, ...]
    root: str  # the build context: symlinks must point inside it
    warnings: tuple[str, ...] = ()
    # container directories between a rule's dest and what is added: the agent removes any
    # that is a symlink before extracting, so tar never writes through one (a local symlink
    # since replaced by a directory)
    guards: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.adds) + len(self.deletes)


@dataclass(frozen=True)
class Payload:
    """A batch as the agent reads it: the delete list, then a tar of the additions."""

    deletes: bytes
    archive: bytes
    files: int  # entries added
    deleted: int
    warnings: tuple[str, ...] = field(default=())
    paths: tuple[str, ...] = field(default=())  # container paths: added, then deleted
    content: int = 0  # bytes of the added files themselves (not of the tar around them)

    @property
    def empty(self) -> bool:
        """Nothing to send: every path was refused or skipped."""
        return not (self.files or self.deleted)

    @property
    def size(self) -> int:
        return len(self.deletes) + len(self.archive)

    def frame(self, seq: int) -> bytes:
        """Header line `<seq> <delete_bytes> <tar_bytes> - <delete_lines>` followed by both
        sections (a short delete list is read line by line, without a `dd`)."""
        lines = self.deletes.count(b"\n")
        return (
            f"{seq} {len(self.deletes)} {len(self.archive)} - {lines}\n".encode()
            + self.deletes
            + self.archive
        )


def container_path(rule: SyncRule, rel: str) -> str:
    """Where context-relative `rel` lands under `rule`; SyncError when it would leave `dest`."""
    parts = rel.split("/")
    if ".." in parts or rel.startswith("/"):
        raise SyncError(f"refused to sync {rel!r}: '..' and absolute paths could leave {rule.dest}")
    if "\n" in rel:
        raise SyncError(f"refused to sync {rel!r}: a newline in a path cannot be framed")
    dest = rule.destination(rel)
    if dest is None:
        raise SyncError(
            f"refused to sync {rel!r}: it is not under the rule's strip prefix {rule.strip!r}"
        )
    target = posixpath.normpath(dest)
    root = posixpath.normpath(rule.dest)
    if not posixpath.isabs(root) or not (
        target == root or target.startswith(root.rstrip("/") + "/")
    ):
        raise SyncError(f"refused to sync {rel!r}: {target} is outside the rule's dest {rule.dest}")
    return target


def batch_for(
    service: Service,
    rule: SyncRule,
    changed: Iterable[str | Path],
    deleted: Iterable[str | Path] = (),
) -> Batch:
    """The batch that mirrors `changed` and `deleted` paths (absolute, or relative to the context).

    Whether a path is added or deleted follows what is on disk now, not which list it came
    in: watchers report a delete followed by a re-create, and the disk is the truth.
    """
    root = os.path.abspath(service.context)
    adds: dict[str, str] = {}
    deletes: dict[str, None] = {}  # ordered set
    warnings: list[str] = []
    guards: dict[str, None] = {}
    dest = posixpath.normpath(rule.dest)
    for path in [*changed, *deleted]:
        local = os.path.abspath(os.path.join(root, path))
        try:
            target = container_path(rule, _relative(root, local, path))
            _check_parents(root, local)
        except SyncError as exc:
            warnings.append(str(exc))
            continue
        if os.path.lexists(local):
            adds[target] = local
            deletes.pop(target, None)
            guards.update(dict.fromkeys(_between(dest, target)))
            if os.path.isdir(local) and not os.path.islink(local):
                guards[target] = None
        else:
            adds.pop(target, None)
            deletes[target] = None
    return Batch(adds, tuple(deletes), root, tuple(warnings), tuple(guards))


def _between(dest: str, target: str) -> list[str]:
    """The directories strictly between `dest` and `target`, outermost first."""
    out = []
    parent = posixpath.dirname(target)
    while parent != dest and parent.startswith(dest.rstrip("/") + "/"):
        out.append(parent)
        parent = posixpath.dirname(parent)
    return out[::-1]


class PlannedSync(Protocol):
    """What devloop.loop.plan.Sync provides: a rule and the context-relative paths to copy and
    delete."""

    @property
    def rule(self) -> SyncRule: ...
    @property
    def copy(self) -> Sequence[HasRel]: ...
    @property
    def delete(self) -> Sequence[HasRel]: ...


class HasRel(Protocol):
    @property
    def rel(self) -> str: ...


def batch_for_plan(service: Service, syncs: Iterable[PlannedSync]) -> Batch:
    """One batch for all of a service's planned syncs (`ServicePlan.syncs`)."""
    return merge(
        [
            batch_for(service, s.rule, [f.rel for f in s.copy], [f.rel for f in s.delete])
            for s in syncs
        ]
        or [Batch({}, (), str(service.context))]
    )


def merge(batches: Iterable[Batch]) -> Batch:
    """One batch applying all of `batches` (several rules of one service); a later one wins."""
    adds: dict[str, str] = {}
    deletes: dict[str, None] = {}
    warnings: list[str] = []
    guards: dict[str, None] = {}
    root = ""
    for b in batches:
        guards.update(dict.fromkeys(b.guards))
        root = root or b.root
        if b.root != root:
            raise SyncError(f"cannot merge batches of two contexts: {root} and {b.root}")
        for target, local in b.adds.items():
            adds[target] = local
            deletes.pop(target, None)
        for target in b.deletes:
            adds.pop(target, None)
            deletes[target] = None
        warnings.extend(b.warnings)
    return Batch(adds, tuple(deletes), root, tuple(warnings), tuple(guards))


def encode(batch: Batch) -> Payload:
    """Read the batch's files and produce the agent's payload (the only step that reads files)."""
    warnings = list(batch.warnings)
    deletes = list(batch.deletes)
    replaced: list[str] = []  # a symlink replaces whatever is there (a directory too)
    files: list[str] = []  # regular files: written in place, never through a symlink
    buf = io.BytesIO()
    added, content, names = 0, 0, []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for target, local in sorted(batch.adds.items()):
            try:
                entry = _entry(batch.root, local, target, warnings)
            except _Vanished:
                deletes.append(target)
                continue
            if entry is None:
                continue
            info, data = entry
            if info.type == tarfile.SYMTYPE:
                replaced.append(target)
            elif info.type == tarfile.REGTYPE:
                files.append(target)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
            added += 1
            content += len(data or b"")
            names.append(target)
    guards = sorted(set(batch.guards) - set(deletes), key=lambda g: g.count("/")) if added else []
    for target in [*deletes, *guards, *files]:
        if "\n" in target or not posixpath.isabs(target):
            raise SyncError(
                f"cannot delete {target!r}: container paths must be absolute and on one line"
            )
    archive = buf.getvalue() if added else b""
    # the agent's delete list: "?path" removes path only when it is a symlink, "=path" when it
    # is anything but a regular file (the agent rewrites regular files in place)
    lines = (
        [f"?{g}" for g in guards]
        + deletes
        + [t for t in replaced if t not in deletes]
        + [f"={t}" for t in files]
    )
    listing = "".join(t + "\n" for t in lines).encode()
    return Payload(
        listing, archive, added, len(deletes), tuple(warnings), (*names, *deletes), content
    )


_Entry = tuple[tarfile.TarInfo, bytes | None]


class _Vanished(Exception):
    """The file was deleted between the change event and the read."""


def _entry(root: str, local: str, target: str, warnings: list[str]) -> _Entry | None:
    """The tar member for `local`; None (with a warning) when refused; _Vanished when gone."""
    try:
        st = os.lstat(local)
    except FileNotFoundError as exc:
        raise _Vanished(local) from exc
    except PermissionError as exc:
        warnings.append(_unreadable(local, exc))
        return None
    info = tarfile.TarInfo(target.lstrip("/"))
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(time.time())
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        return info, None
    if stat.S_ISLNK(st.st_mode):
        link = _link_inside(root, local)
        if link is None:
            warnings.append(
                f"refused to sync {local}: the symlink points outside the build context {root}"
            )
            return None
        info.type, info.linkname = tarfile.SYMTYPE, link
        return info, None
    if not stat.S_ISREG(st.st_mode):
        warnings.append(f"skipped {local}: sockets, FIFOs and devices are not synced")
        return None
    try:
        data = _read(local)
    except PermissionError as exc:  # mode 000, another user's file: the rest still syncs
        warnings.append(_unreadable(local, exc))
        return None
    if data is None:
        raise _Vanished(local)
    info.size = len(data)
    return info, data


def _read(local: str) -> bytes | None:
    """Content of regular file `local`, or None when it is gone; never blocks on a FIFO."""
    # the file may have been swapped for a FIFO or a link since lstat: O_NONBLOCK keeps
    # open() from hanging, O_NOFOLLOW from reading through a new link
    try:
        fd = os.open(local, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError:
        raise
    except OSError as exc:
        raise SyncError(f"cannot read {local} to sync it: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return f.read()


def _unreadable(local: str, exc: OSError) -> str:
    return f"skipped {local}: cannot read it ({exc.strerror}); it syncs once it is readable"


def _link_inside(root: str, local: str) -> str | None:
    """The link text to store, when the link resolves inside `root`; else None."""
    real_root = os.path.realpath(root)
    resolved = os.path.realpath(local)
    if not (resolved == real_root or resolved.startswith(real_root.rstrip("/") + "/")):
        return None
    text = os.readlink(local)
    if os.path.isabs(text):
        # an absolute host path means nothing in the container: keep the link relative
        return os.path.relpath(resolved, os.path.realpath(os.path.dirname(local)))
    return text


def _relative(root: str, local: str, given: str | Path) -> str:
    rel = os.path.relpath(local, root)
    if rel == ".." or rel.startswith("../"):
        raise SyncError(f"refused to sync {given}: it is outside the build context {root}")
    return rel.replace(os.sep, "/")


def _check_parents(root: str, local: str) -> None:
    """Refuse a path that reaches into a directory through a symlink: tar would follow it."""
    parent = os.path.dirname(local)
    real = os.path.realpath(parent)
    expected = os.path.join(os.path.realpath(root), os.path.relpath(parent, root))
    if os.path.exists(parent) and real != os.path.normpath(expected):
        raise SyncError(f"refused to sync {local}: a directory above it is a symlink")
