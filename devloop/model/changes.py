"""A batch of changed paths, as the watcher reports them and the planner reads them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

ChangeKind = Literal["added", "modified", "deleted"]


class Change(NamedTuple):
    kind: ChangeKind
    path: Path  # absolute
    directory: bool = False  # a deleted path that was a watched directory


@dataclass(frozen=True)
class ChangeBatch:
    """Changes seen together; `first_seen` is the `time.monotonic()` the first one was noticed."""

    changes: tuple[Change, ...]
    first_seen: float = 0.0

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)
