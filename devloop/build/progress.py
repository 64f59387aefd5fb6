"""A build's progress read from its output lines: step k of n, and how many steps came from the
cache (the classic builder's `Step 2/5 :` and `---> Using cache`, BuildKit's plain `#7 [2/5]`
and `#7 CACHED`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# classic: "Step 2/5 : RUN make"; BuildKit plain: "#7 [build 2/5] RUN make" or "#7 [2/5] RUN make"
_CLASSIC = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_BUILDKIT = re.compile(r"^#(\d+) \[(?:[^\]]*? )?(\d+)/(\d+)\] (.*)$")
_BUILDKIT_CACHED = re.compile(r"^#(\d+) CACHED$")


@dataclass(frozen=True)
class Progress:
    step: int
    steps: int
    cached: int
    text: str  # the step's instruction, e.g. "RUN make"


class ProgressReader:
    """Feed it every output line; it calls `on_progress` when the step or the cache count moves."""

    def __init__(self, on_progress: Callable[[Progress], None]) -> None:
        self._on_progress = on_progress
        self._step = self._steps = self._cached = 0
        self._text = ""
        self._vertices: dict[str, int] = {}  # BuildKit: vertex number → step index
        self._cached_vertices: set[str] = set()

    def line(self, line: str) -> None:
        if m := _CLASSIC.match(line):
            self._step, self._steps, self._text = int(m[1]), int(m[2]), m[3]
        elif line.strip() == "---> Using cache":
            self._cached += 1
        elif m := _BUILDKIT.match(line):
            if m[1] in self._vertices:
                return  # the same step said again (its output follows)
            self._vertices[m[1]] = int(m[2])
            self._step, self._steps, self._text = int(m[2]), int(m[3]), m[4]
        elif (m := _BUILDKIT_CACHED.match(line)) and m[1] in self._vertices:
            if m[1] in self._cached_vertices:
                return
            self._cached_vertices.add(m[1])
            self._cached += 1
        else:
            return
        self._on_progress(Progress(self._step, self._steps, self._cached, self._text))
