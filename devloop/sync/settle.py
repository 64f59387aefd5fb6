"""Files written twice in quick succession, written once more when they have settled.

Watchers inside containers drop a change that follows another too closely: chokidar
(behind Vite, webpack, nodemon) emits at most one `change` per file per 50 ms and has
no trailing event, so when a burst of saves reaches a container as two batches a few
milliseconds apart, the dev server keeps the version of the first batch until the next
save. Editors rarely save a file twice within 50 ms; devloop's batching (a 10 ms step)
can. So a file that a batch writes within `window` of its previous write is written
again, with what it holds by then, once it has been left alone for `quiet`: the watcher
sees one more change, past its throttle, and reloads the last version.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

WINDOW = 0.1  # s: a second write within this of the first may be dropped by a watcher
QUIET = 0.1  # s: then wait this long after the last write (chokidar's throttle is 50 ms)


@dataclass
class _Pending:
    adds: dict[str, str] = field(default_factory=dict)  # container path → local path
    due: float = 0.0


class Settle:
    """Per service: when each container path was last written, and which to write again."""

    def __init__(
        self,
        window: float = WINDOW,
        quiet: float = QUIET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window
        self._quiet = quiet
        self._clock = clock
        self._written: dict[tuple[str, str], float] = {}
        self._pending: dict[str, _Pending] = {}

    def wrote(
        self,
        service: str,
        adds: Mapping[str, str],
        deletes: Iterable[str] = (),
        *,
        again: bool = False,
    ) -> None:
        """A batch wrote `adds` (container path → local path) and deleted `deletes`; `again`:
        it was this module's own second write, which needs none after it."""
        now = self._clock()
        pending = self._pending.get(service)
        for target in deletes:  # a deleted file is not written again
            self._written.pop((service, target), None)
            if pending:
                pending.adds.pop(target, None)
        for target, local in adds.items():
            last = self._written.get((service, target))
            self._written[(service, target)] = now
            if not again and last is not None and now - last < self._window:
                pending = self._pending.setdefault(service, _Pending())
                pending.adds[target] = local
            if pending and target in pending.adds:
                pending.due = now + self._quiet
        if len(self._written) > 10_000:  # forget writes too old to matter
            self._written = {k: t for k, t in self._written.items() if now - t < self._window}

    def wait(self, longest: float) -> float:
        """How long the loop may wait for work before a write falls due (at most `longest`)."""
        if not self._pending:
            return longest
        soonest = min(p.due for p in self._pending.values())
        return max(0.0, min(longest, soonest - self._clock()))

    def due(self) -> dict[str, dict[str, str]]:
        """The writes due now, per service (container path → local path); they are forgotten."""
        now = self._clock()
        ready = {s: p.adds for s, p in self._pending.items() if p.due <= now and p.adds}
        for s in [s for s, p in self._pending.items() if p.due <= now]:
            del self._pending[s]
        return ready

    def forget(self, service: str) -> None:
        """A new image or new containers: nothing to write again."""
        self._pending.pop(service, None)
