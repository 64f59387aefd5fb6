"""Build output as lines: split streamed chunks, remember the current step and the last lines
for errors."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable

TAIL_LINES = 10
# `docker build` (classic builder): "Step 2/3 : RUN make"; BuildKit: "#7 [build 2/3] RUN make"
_STEP = re.compile(r"^(Step \d+/\d+ : .*|#\d+ \[[^\]]*\d+/\d+\] .*)$")
# classic-builder bookkeeping that says nothing about why a step failed
_NOISE = (" ---> ", "Removing intermediate container", "Successfully ")
# BuildKit's (plain progress): vertex digests, timings, the error's recap
_BUILDKIT_NOISE = re.compile(r"^(#\d+ (sha256:|DONE |CACHED|ERROR: )|------|\s*> \[)")
_BUILDKIT_OUTPUT = re.compile(r"^#\d+ \d+\.\d+ ")  # "#7 0.263 " before a RUN's output
# the classic builder colours a RUN step's stderr red
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class BuildLog:
    """Feeds complete lines to `on_line`; keeps the last step seen and the lines printed since."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self._on_line = on_line
        self._partial = ""
        self.step: str | None = None
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def feed(self, text: str) -> None:
        """Add streamed text; chunks may hold several lines or end in the middle of one."""
        lines = (self._partial + text).replace("\r\n", "\n").split("\n")
        self._partial = lines.pop()
        for line in lines:
            self.line(line)

    def line(self, line: str) -> None:
        line = _ANSI.sub("", line).rstrip()
        if not line:
            return
        self._on_line(line)
        match = _STEP.match(line.lstrip("\r"))
        if match:
            step = (
                match.group(1).removeprefix("#").split(" ", 1)[1]
                if line.startswith("#")
                else match.group(1)
            )
            if step != self.step:  # BuildKit says a step again when its output resumes
                self.step = step
                self.tail.clear()
        elif not line.startswith(_NOISE) and not _BUILDKIT_NOISE.match(line):
            self.tail.append(_BUILDKIT_OUTPUT.sub("", line))

    def flush(self) -> None:
        if self._partial:
            self.line(self._partial)
            self._partial = ""

    def failure(self, what: str, reason: str) -> str:
        """`what failed at <step>: <reason>` followed by the step's last output lines."""
        self.flush()
        at = f" at {self.step}" if self.step else ""
        lines = [line for line in self.tail if line.strip() != reason.strip()]
        out = f"{what}{at}: {reason.strip()}"
        if lines:
            out += "\n  last output:\n" + "\n".join(f"    {line}" for line in lines)
        return out
