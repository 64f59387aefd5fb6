"""What was synced into a service since its image was built, to replay into new containers.

A synced change must never be lost: when a container restarts or is replaced by
one from the same image, the session replays these files (read from disk again,
so the container gets what the file holds now) before it reports the service ready.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from devloop.sync.payload import Batch


@dataclass
class _Memory:
    adds: dict[str, str] = field(default_factory=dict)  # container path → local path
    deletes: set[str] = field(default_factory=set)  # container paths
    guards: set[str] = field(default_factory=set)
    thens: set[object] = field(default_factory=set)


class Replay:
    def __init__(self) -> None:
        self._memory: dict[str, _Memory] = {}

    def record(self, service: str, batch: Batch, thens: Iterable[object] = ()) -> None:
        mem = self._memory.setdefault(service, _Memory())
        for target, local in batch.adds.items():
            mem.adds[target] = local
            mem.deletes.discard(target)
        for target in batch.deletes:
            below = target.rstrip("/") + "/"  # a deleted directory takes its files with it
            for gone in [t for t in mem.adds if t == target or t.startswith(below)]:
                del mem.adds[gone]
            mem.deletes.add(target)
        mem.guards.update(batch.guards)
        mem.thens.update(thens)

    def reset(self, service: str) -> None:
        """The service has a new image: it contains everything synced so far."""
        self._memory.pop(service, None)

    def batch(self, service: str, context: Path) -> Batch | None:
        mem = self._memory.get(service)
        if mem is None:
            return None
        return Batch(
            adds=dict(mem.adds),
            deletes=tuple(sorted(mem.deletes)),
            root=str(context),
            guards=tuple(sorted(mem.guards)),
        )

    def thens(self, service: str) -> set[object]:
        mem = self._memory.get(service)
        return set(mem.thens) if mem else set()

    def services(self) -> list[str]:
        """The services with something remembered."""
        return [s for s, m in self._memory.items() if m.adds or m.deletes]

    def files(self, service: str) -> int:
        mem = self._memory.get(service)
        return len(mem.adds) + len(mem.deletes) if mem else 0
