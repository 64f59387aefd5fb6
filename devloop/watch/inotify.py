"""The Linux watcher: inotify read directly, one watch per directory, blocking on the fd.

Nothing wakes up while the tree is idle (the thread sleeps in `select` on the inotify fd and a
stop pipe). A batch goes out as soon as the events that are already queued are read: no
trailing quiet window; what arrives while the loop syncs forms the next batch (the session
drains its queue). It acts on complete changes (IN_CLOSE_WRITE, IN_MOVED_TO, IN_DELETE,
IN_MOVED_FROM, IN_CREATE) and never on IN_MODIFY, so a half-written file is not sent.

It keeps what it last knew of every watched file (path -> (mtime_ns, size, inode)). Whenever
the watch set is in doubt -- IN_Q_OVERFLOW, IN_IGNORED on a directory still there, a directory
created, moved in or re-created -- it rescans the affected subtree (the roots on overflow),
diffs against that state and reports the difference, so no change is lost to a race.
"""

from __future__ import annotations

import os
import select
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from inotify_simple import Event, INotify
from inotify_simple import flags as F

from devloop.files.ignore import PathRules
from devloop.model.changes import Change, ChangeBatch, ChangeKind
from devloop.model.events import Watching
from devloop.model.project import Project
from devloop.watch.roots import WatchRoots, watch_roots
from devloop.watch.watcher import WatchError

__all__ = ["InotifyWatcher"]

_MASK = (
    F.CLOSE_WRITE
    | F.MOVED_TO
    | F.MOVED_FROM
    | F.DELETE
    | F.CREATE
    | F.DELETE_SELF
    | F.ONLYDIR
    | F.DONT_FOLLOW
    | F.EXCL_UNLINK
)
# A file created without a write (an empty file, a hard link, a mknod) has no IN_CLOSE_WRITE
# to wait for; one that is being written gets it within this long, so a create alone waits.
_CREATE_GRACE_S = 0.02
# A vim-style save renames the file away and writes a new one: a lone disappearance waits this
# long for its reappearance, so the container never sees the file missing.
_DELETE_GRACE_S = 0.005
_CLOCK_MARGIN_NS = 50_000_000
_Stat = tuple[int, int, int]


class InotifyWatcher:
    """Yields a ChangeBatch per read of the inotify queue until `stop` is set."""

    def __init__(
        self, project: Project, services: Iterable[str], stop: threading.Event, **_: int
    ) -> None:
        started = time.perf_counter()
        names = project.closure(services)
        self._rules = PathRules(project, names)
        self._stop = stop
        self._gone: set[str] = set()  # directories found deleted in the batch being made
        self.watch_roots: WatchRoots = watch_roots(project, names, self._rules)
        self._flat = {str(p) for p in self.watch_roots.flat} - {
            d for d in self.watch_roots.dirs if self._rules.top_of(d + os.sep) is not None
        }
        self._wd: dict[int, str] = {}
        self._dir_wd: dict[str, int] = {}
        self._known: dict[str, _Stat] = {}
        try:
            self._ino = INotify()
        except OSError as exc:
            raise WatchError(f"could not open inotify: {exc}") from exc
        self._wake_r, self._wake_w = os.pipe()
        self._closed = False
        # file timestamps come from a coarse clock: a margin so no change after this is missed
        self._watched_at_ns = time.time_ns() - _CLOCK_MARGIN_NS
        for d in self.watch_roots.dirs:
            self._watch(d)
        self._snapshot_pending = True
        threading.Thread(target=self._wake_on_stop, name="devloop-watch-stop", daemon=True).start()
        self.ms = (time.perf_counter() - started) * 1000

    # -- what the session and `devloop plan` read ---------------------------

    @property
    def roots(self) -> tuple[Path, ...]:
        return self.watch_roots.trees

    @property
    def file_count(self) -> int:
        return self.watch_roots.files

    @property
    def watches(self) -> int:
        """Directories watched right now: one inotify watch each."""
        return len(self._dir_wd)

    def event(self) -> Watching:
        return Watching(
            roots=[str(r) for r in self.roots], files=self.file_count, ms=round(self.ms, 1)
        )

    # -- the loop ------------------------------------------------------------

    def __iter__(self) -> Iterator[ChangeBatch]:
        try:
            self.snapshot()
            while not self._stop.is_set():
                if not self._wait(None):
                    break
                first_seen = time.monotonic()
                touched: dict[str, int] = {}
                rescan: set[str] = set()
                self._read(touched, rescan)
                self._settle(touched, rescan)
                batch = ChangeBatch(tuple(self._resolve(touched, rescan)), first_seen)
                if batch.changes:
                    yield batch
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._ino.close()

    def __enter__(self) -> InotifyWatcher:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _wake_on_stop(self) -> None:
        self._stop.wait()  # blocks on a lock: no periodic wake-up
        if not self._closed:
            os.write(self._wake_w, b"x")

    def _wait(self, timeout: float | None) -> bool:
        """Block until inotify has events (True), or `timeout` passes / stop is set (False)."""
        if self._closed:
            return False
        ready, _, _ = select.select([self._ino.fileno(), self._wake_r], [], [], timeout)
        return self._ino.fileno() in ready and not self._stop.is_set()

    def _settle(self, touched: dict[str, int], rescan: set[str]) -> None:
        """Give a lone create its close, and a lone disappearance its re-creation, a few ms."""
        waited = 0.0
        while not self._stop.is_set():
            pending = [m for m in touched.values() if not m & (F.CLOSE_WRITE | F.MOVED_TO)]
            if not pending:
                return
            grace = _CREATE_GRACE_S if any(m & F.CREATE for m in pending) else _DELETE_GRACE_S
            if waited >= grace:
                return
            t0 = time.monotonic()
            if not self._wait(grace - waited):
                return
            waited += time.monotonic() - t0
            self._read(touched, rescan)

    def _read(self, touched: dict[str, int], rescan: set[str]) -> None:
        """Fold every queued event into `touched` (path -> flags seen) and `rescan` (dirs)."""
        try:
            events = self._ino.read(timeout=0)
        except OSError as exc:
            raise WatchError(f"reading inotify events failed: {exc}") from exc
        self._fold(events, touched, rescan)

    def _fold(self, events: Iterable[Event], touched: dict[str, int], rescan: set[str]) -> None:
        for ev in events:
            if ev.mask & F.Q_OVERFLOW:
                rescan.update(str(t) for t in self.watch_roots.trees)
                continue
            parent = self._wd.get(ev.wd)
            if ev.mask & F.IGNORED:
                self._lost(ev.wd, rescan)
                continue
            if parent is None or not ev.name:
                continue
            path = os.path.join(parent, ev.name)
            if ev.mask & F.ISDIR:
                rescan.add(path)  # created, moved in, deleted or moved out: the disk says which
            elif self._rules.counts(path):  # temp files never hold a batch back
                touched[path] = touched.get(path, 0) | ev.mask

    def _lost(self, wd: int, rescan: set[str]) -> None:
        """A watch went away: its directory was deleted, or it is there again (re-created,
        moved back) and must be watched and rescanned."""
        path = self._wd.pop(wd, None)
        if path is None:
            return
        if self._dir_wd.get(path) == wd:
            del self._dir_wd[path]
        rescan.add(path)

    # -- the disk is the truth -----------------------------------------------

    def _resolve(self, touched: dict[str, int], rescan: set[str]) -> list[Change]:
        changes: dict[str, ChangeKind] = {}
        self._gone = set()
        for d in _outermost(rescan, self._flat):
            self._rescan(d, changes)
        for path, mask in touched.items():
            if path in changes or not self._rules.counts(path):
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                known = self._known.pop(path, None) is not None
                if known or not mask & (F.CREATE | F.MOVED_TO):  # not a temp file's life
                    changes[path] = "deleted"
                continue
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                self._rescan(path, changes)
                continue
            before = self._known.get(path)
            self._known[path] = _stat_of(st)
            new = before is None and mask & (F.CREATE | F.MOVED_TO)
            changes[path] = "added" if new else "modified"
        return [Change(k, Path(p), p in self._gone) for p, k in sorted(changes.items())]

    def _rescan(self, d: str, changes: dict[str, ChangeKind]) -> None:
        """Walk `d` as it is now, watch its directories, report how it differs from what was
        known."""
        now: dict[str, _Stat] = {}
        scanned: set[str] = set()
        self._walk(d, now, scanned)
        prefix = d + os.sep
        counts = self._rules.counts
        for p in [p for p in self._known if p.startswith(prefix) or p == d]:
            parent = os.path.dirname(p)
            if p not in now and (parent in scanned or not os.path.isdir(parent)):
                del self._known[p]
                if counts(p):
                    changes[p] = "deleted"
        for p, st in now.items():
            before = self._known.get(p)
            if before != st and counts(p):
                changes[p] = "added" if before is None else "modified"
            self._known[p] = st
        if not os.path.isdir(d) and self._owned(d) and self._rules.counts(d):
            for w in [w for w in self._dir_wd if w == d or w.startswith(prefix)]:
                self._wd.pop(self._dir_wd.pop(w), None)
            changes.setdefault(d, "deleted")
            self._gone.add(d)

    def _owned(self, d: str) -> bool:
        return d in self._flat or self._rules.top_of(d + os.sep) is not None

    def _walk(self, d: str, out: dict[str, _Stat], scanned: set[str]) -> None:
        flat = d in self._flat
        if not flat and (
            self._rules.top_of(d + os.sep) is None
            or self._rules.dir_ignored(d, os.path.basename(d))
            or not self._rules.counts(d)
        ):
            return
        if not self._watch(d):
            return
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError:
            return
        scanned.add(d)
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    if not flat or self._rules.top_of(e.path + os.sep) is not None:
                        self._walk(e.path, out, scanned)
                else:  # whether it counts is asked only of what changed
                    out[e.path] = _stat_of(e.stat(follow_symlinks=False))
            except OSError:
                continue

    def _watch(self, d: str) -> bool:
        try:
            wd = self._ino.add_watch(d, _MASK)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise WatchError(
                f"could not watch {d} ({len(self._dir_wd)} directories watched): {exc}"
                " (raise fs.inotify.max_user_watches, or add trees to the 'ignore' list)"
            ) from exc
        old = self._dir_wd.get(d)
        if old is not None and old != wd:
            self._wd.pop(old, None)
        self._wd[wd] = d
        self._dir_wd[d] = wd
        return True

    def snapshot(self) -> None:
        """Record what every watched directory holds, once. Taken when iteration starts, after
        the watches are in place (the kernel queues whatever happens meanwhile, so nothing is
        lost), so that 100k lstat calls do not delay watching."""
        if self._snapshot_pending:
            self._snapshot_pending = False
            for d in list(self._dir_wd):
                self._snapshot_dir(d)

    def _snapshot_dir(self, d: str) -> None:
        """What is in `d` now (files only, counting or not), the base of later diffs."""
        try:
            with os.scandir(d) as it:
                for e in it:
                    if not e.is_dir(follow_symlinks=False):
                        try:
                            st = e.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        # changed since the watches were placed: its events may be lost to an
                        # overflow, so leave it unknown and a rescan reports it
                        if max(st.st_mtime_ns, st.st_ctime_ns) < self._watched_at_ns:
                            self._known[e.path] = _stat_of(st)
        except OSError:
            return


def _stat_of(st: os.stat_result) -> _Stat:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _outermost(dirs: set[str], flat: set[str]) -> list[str]:
    """`dirs` without those inside another one of them (each subtree rescanned once); a flat
    directory's rescan does not reach into its subdirectories, so it hides none."""
    out: list[str] = []
    for d in sorted(dirs):
        if not any(d == o or d.startswith(o + os.sep) for o in out if o not in flat):
            out.append(d)
    return out
