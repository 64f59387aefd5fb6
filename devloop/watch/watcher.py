"""The watcher: watchfiles over the non-ignored directories of the selected services →
ChangeBatch."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal

from watchfiles._rust_notify import RustNotify

from devloop.errors import DevloopError
from devloop.files.ignore import PathRules
from devloop.model.changes import Change, ChangeBatch, ChangeKind
from devloop.model.events import Watching
from devloop.model.project import Project
from devloop.watch.roots import Walk, WatchRoots, watch_roots

__all__ = ["WatchError", "WatchRoots", "Watcher", "watch_roots"]

_ADDED, _MODIFIED, _DELETED = 1, 2, 3  # watchfiles.Change values
BULK_PATHS = 100  # a batch this big is a bulk operation (a checkout), not an editor's save
BULK_GRACE_MS = 50


class WatchError(DevloopError):
    """Watching the source tree failed (inotify limits, a vanished root, a notify error)."""


class Watcher:
    """Yields a ChangeBatch per burst of changes until `stop` is set.

    Every directory is watched on its own (non-recursively), so ignored trees
    such as node_modules cost no inotify watch; directories created later are
    added to the watch, and the files already in them reported as added.
    A batch closes after `step_ms` without a new change, or `max_batch_ms` after
    it opened, whichever comes first. Only a path not yet in the batch keeps it
    open (a file rewritten over and over does not), so the cap bites only in bulk
    operations -- a branch switch, an unpacked archive -- which are better as one
    batch: on a slow disk (0.8 ms per created file here) 2,000 files take 1.6 s.
    """

    def __init__(
        self,
        project: Project,
        services: Iterable[str],
        stop: threading.Event,
        *,
        step_ms: int = 10,
        max_batch_ms: int = 2000,
        poll_ms: int = 1000,
    ) -> None:
        started = time.perf_counter()
        names = project.closure(services)
        self._rules = PathRules(project, names)
        self._stop = stop
        self._step_ms, self._max_batch_ms, self._poll_ms = step_ms, max_batch_ms, poll_ms
        self.watch_roots: WatchRoots = watch_roots(project, names, self._rules)
        self._dirs = set(self.watch_roots.dirs)
        self._gone: set[str] = set()  # watched directories deleted in the batch being made
        self._notify = self._open()
        self.ms = (time.perf_counter() - started) * 1000

    @property
    def roots(self) -> tuple[Path, ...]:
        """The trees watched: the build contexts, and the directories of templates and
        devloop.yaml."""
        return self.watch_roots.trees

    @property
    def file_count(self) -> int:
        return self.watch_roots.files

    @property
    def watches(self) -> int:
        """Directories watched right now: one inotify watch each."""
        return len(self._dirs)

    def event(self) -> Watching:
        return Watching(
            roots=[str(r) for r in self.roots], files=self.file_count, ms=round(self.ms, 1)
        )

    def __iter__(self) -> Iterator[ChangeBatch]:
        try:
            while not self._stop.is_set():
                raw = self._wait(self._max_batch_ms, self._poll_ms)
                if isinstance(raw, set):
                    first_seen = time.monotonic() - self._step_ms / 1000
                    batch = self._batch(self._rest_of_bulk(raw, first_seen), first_seen)
                    if batch.changes:
                        yield batch
        finally:
            self.close()

    def close(self) -> None:
        self._notify.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _rest_of_bulk(self, raw: set[tuple[int, str]], first_seen: float) -> set[tuple[int, str]]:
        """A bulk operation stalls now and then for longer than a step (a slow disk, a busy
        machine): after a big batch, give it BULK_GRACE_MS more to go on before closing."""
        while len(raw) >= BULK_PATHS:
            left_ms = int(self._max_batch_ms - (time.monotonic() - first_seen) * 1000)
            more = self._wait(left_ms, BULK_GRACE_MS) if left_ms > 0 else None
            if not isinstance(more, set) or not more - raw:
                break
            raw |= more
        return raw

    def _wait(self, cap_ms: int, timeout_ms: int) -> set[tuple[int, str]] | str:
        try:
            raw = self._notify.watch(cap_ms, self._step_ms, timeout_ms, self._stop)
        except RuntimeError as exc:
            raise WatchError(f"watching {len(self._dirs)} directories failed: {exc}") from exc
        if raw == "signal":  # watchfiles swallows the KeyboardInterrupt it saw; give it back
            raise KeyboardInterrupt
        return raw

    def _open(self) -> RustNotify:
        """A notifier on every directory still there."""
        for _ in range(3):  # a directory may vanish between the check and the watch
            dirs = [d for d in self._dirs if os.path.isdir(d)]
            try:
                return RustNotify(dirs, False, False, 300, False, False)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise WatchError(
                    f"could not watch {len(dirs)} directories: {exc}"
                    " (raise fs.inotify.max_user_watches, or add trees to the 'ignore' list)"
                ) from exc
        raise WatchError(f"could not watch {len(self._dirs)} directories: they keep disappearing")

    def _batch(self, raw: set[tuple[int, str]], first_seen: float) -> ChangeBatch:
        changes: dict[str, ChangeKind] = {}
        self._gone = set()
        for _ in range(5):  # new directories found while adding new directories: bounded
            new_dirs = self._absorb(raw, changes)
            if not new_dirs:
                break
            raw = self._grow(new_dirs, changes)
        return ChangeBatch(
            tuple(Change(k, Path(p), p in self._gone) for p, k in sorted(changes.items())),
            first_seen,
        )

    def _absorb(self, raw: set[tuple[int, str]], changes: dict[str, ChangeKind]) -> list[str]:
        """Fold raw notify changes into `changes`; return the directories that appeared."""
        seen: dict[str, set[int]] = {}
        for code, path in raw:
            seen.setdefault(path, set()).add(code)
        # before any _forget below drops a deleted directory's subdirectories with it
        was_dir = {p for p in seen if p in self._dirs}
        new_dirs = []
        for path, codes in seen.items():
            if self._dropped(path):
                continue
            final = _final_kind(path, codes)
            if final == "dir":
                if _ADDED in codes:
                    # already watched yet created again: deleted and re-created within one
                    # step, so the watch died with the old directory -- watch it anew
                    self._forget(path)
                    if self._is_new_tree(path):
                        new_dirs.append(path)
            elif final is not None:
                if final == "deleted":
                    if path in was_dir:
                        self._gone.add(path)
                    self._forget(path)
                changes[path] = final
        return new_dirs

    def _is_new_tree(self, path: str) -> bool:
        """A directory inside a watched context, not watched yet, not ignored."""
        return (
            path not in self._dirs
            and self._rules.top_of(path) is not None
            and not self._rules.dir_ignored(path, os.path.basename(path))
        )

    def _grow(self, new_dirs: list[str], changes: dict[str, ChangeKind]) -> set[tuple[int, str]]:
        """Watch `new_dirs`, then report the files already in them (made before the watch was
        placed)."""
        found = Walk(self._rules)
        for d in new_dirs:
            found.tree(d)
        self._dirs.update(found.dirs)
        old, self._notify = self._notify, self._open()
        drained = old.watch(0, 1, 1, None)  # whatever the old notifier saw since its last batch
        old.close()
        after = Walk(self._rules, paths=[])
        for d in new_dirs:
            after.tree(d)
        for p in after.paths or ():
            if not self._dropped(p):
                changes.setdefault(p, "added")
        late = {(_ADDED, d) for d in after.dirs if d not in self._dirs}
        return (drained if isinstance(drained, set) else set()) | late

    def _dropped(self, path: str) -> bool:
        return not self._rules.counts(path)

    def _forget(self, path: str) -> None:
        if path in self._dirs:
            prefix = path + os.sep
            self._dirs = {d for d in self._dirs if d != path and not d.startswith(prefix)}


def _final_kind(path: str, seen: set[int]) -> ChangeKind | Literal["dir"] | None:
    """What a path's changes add up to, judged by what is there now (notify's set loses their
    order)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "deleted"
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return "dir"
    return "added" if seen == {_ADDED} else "modified"
