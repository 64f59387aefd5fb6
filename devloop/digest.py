"""Content-addressed image tags: a digest of everything that goes into a build."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from devloop.ignore import ContextFilter
from devloop.project import Project, Service

TAG_LENGTH = 16
_CHUNK = 1 << 20


def context_digest(svc: Service) -> str:
    """sha256 over path, type, mode and content of every file the daemon would see."""
    h = hashlib.sha256()
    root = svc.context
    for rel in ContextFilter(root, svc.dockerfile).files():
        full = os.path.join(root, rel)
        try:
            st = os.lstat(full)
        except FileNotFoundError:  # removed while we walked: the next change batch will tell
            continue
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            h.update(b"D\0" + rel.encode() + b"\0")
        elif stat.S_ISLNK(mode):
            h.update(b"L\0" + rel.encode() + b"\0" + os.readlink(full).encode() + b"\0")
        elif stat.S_ISREG(mode):
            h.update(b"F\0" + rel.encode() + b"\0" + oct(stat.S_IMODE(mode) & 0o111).encode() + b"\0")
            h.update(_file_hash(full))
    return h.hexdigest()


def _file_hash(path: str) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.digest()


def service_tag(svc: Service, dependency_tags: Mapping[str, str], context_sum: str | None = None) -> str:
    """The tag for `svc`, given the full references of the images it requires."""
    h = hashlib.sha256()
    h.update(b"devloop-tag-v1\0")
    dockerfile = svc.dockerfile.read_bytes() if svc.dockerfile.is_file() else b""
    h.update(hashlib.sha256(dockerfile).digest())
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
