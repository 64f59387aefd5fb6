"""Content-addressed image tags: a digest of everything that goes into a build."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from devloop.build.inputs import cached_inputs
from devloop.errors import BuildError
from devloop.files.dockerignore import ContextFilter
from devloop.model.project import Project, Service

TAG_LENGTH = 16
_CHUNK = 1 << 20
# A file modified this recently may be modified again within the same timestamp tick
# (1-2 s on some filesystems) without its stat changing: never trust the cache for it.
_SETTLE_NS = 2_000_000_000
_MAX_ENTRIES = 200_000

StatKey = tuple[int, int, int, int, int]  # size, mtime_ns, ctime_ns, inode, device


class HashCache:
    """Content hashes of files, reused while their stat is unchanged (like git's index)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[StatKey, bytes]] = {}
        self._lock = threading.Lock()

    def file_hash(self, path: str, st: os.stat_result) -> bytes:
        key: StatKey = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
        with self._lock:
            hit = self._entries.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        started = time.time_ns()
        value = _file_hash(path)
        if started - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLE_NS:
            with self._lock:
                if len(self._entries) >= _MAX_ENTRIES:
                    self._entries.clear()
                self._entries[path] = (key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE = HashCache()


def context_digest(svc: Service, cache: HashCache = CACHE) -> str:
    """sha256 over path, type, exec bits and content of every file the daemon would see
    and the Dockerfile can reach (its inputs)."""
    h = hashlib.sha256()
    root = str(svc.context)
    inputs = cached_inputs(svc)
    for rel, st in ContextFilter(svc.context, svc.dockerfile).entries():
        if not inputs.reaches(rel):
            continue
        try:
            h.update(_entry(rel, os.path.join(root, rel), st, cache))
        except FileNotFoundError:  # removed while we walked: the next change batch will tell
            continue
        except OSError as exc:
            raise BuildError(
                f"cannot read '{rel}' in the build context of {svc.name} ({root}): {exc}"
            ) from None
    return h.hexdigest()


def _entry(rel: str, full: str, st: os.stat_result, cache: HashCache) -> bytes:
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return b"D\0" + rel.encode() + b"\0"
    if stat.S_ISLNK(mode):
        return b"L\0" + rel.encode() + b"\0" + os.readlink(full).encode() + b"\0"
    if stat.S_ISREG(mode):
        # only the exec bits: the rest depends on the checkout's umask, not on the sources
        head = b"F\0" + rel.encode() + b"\0" + oct(stat.S_IMODE(mode) & 0o111).encode() + b"\0"
        return head + cache.file_hash(full, st)
    return b""  # sockets, fifos: `docker build` cannot send them either


def _file_hash(path: str) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.digest()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc}") from None


def service_tag(
    svc: Service, dependency_tags: Mapping[str, str], context_sum: str | None = None
) -> str:
    """The tag for `svc`, given the full references of the images it requires."""
    h = hashlib.sha256()
    h.update(b"devloop-tag-v2\0")
    # the Dockerfile and .dockerignore always count, whatever .dockerignore says (as for
    # `docker build`)
    h.update(hashlib.sha256(_read(svc.dockerfile)).digest())
    h.update(hashlib.sha256(_read(svc.context / ".dockerignore")).digest())
    h.update(f"target={svc.target or ''}\0".encode())
    for key in sorted(svc.build_args):
        h.update(f"arg:{key}={svc.build_args[key]}\0".encode())
    if svc.builder:
        h.update(f"builder={svc.builder}\0".encode())
    for dep in sorted(svc.requires):
        h.update(f"requires:{dep}={dependency_tags[dep]}\0".encode())
    h.update((context_sum or context_digest(svc)).encode())
    return h.hexdigest()[:TAG_LENGTH]


def image_refs(project: Project, names: Iterable[str] | None = None) -> dict[str, str]:
    """service → `image:tag` for `names` and what they require, the same tags a build produces."""
    refs: dict[str, str] = {}
    for name in project.closure(names or ()):
        svc = project.services[name]
        refs[name] = f"{svc.image}:{service_tag(svc, refs)}"
    return refs


def context_relative(svc: Service, path: Path) -> str | None:
    """`path` relative to the service's context ('/'-separated), or None when outside it."""
    try:
        return path.relative_to(svc.context).as_posix()
    except ValueError:
        return None
