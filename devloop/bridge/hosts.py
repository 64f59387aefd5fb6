"""A marked block of /etc/hosts entries for the names the local process dials (needs root).

Each block is tagged with the project and the pid of the devloop that wrote it, so a block left
by a devloop that was killed (SIGKILL) is removed by the next run or by `devloop delete`.
The file is rewritten in place, not renamed: /etc/hosts is often a bind mount.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

HOSTS = Path("/etc/hosts")
_BLOCK = re.compile(
    r"^# devloop (?P<project>\S+) pid (?P<pid>\d+) begin\n"
    r".*?^# devloop (?P=project) pid (?P=pid) end\n",
    re.M | re.S,
)


def writable(path: Path = HOSTS) -> bool:
    return os.access(path, os.W_OK)


def add(project: str, entries: Sequence[tuple[str, str]], path: Path = HOSTS) -> None:
    """Append a block of `ip name` lines for this process."""
    pid = os.getpid()
    block = [f"# devloop {project} pid {pid} begin"]
    block += [f"{ip} {name}" for ip, name in entries]
    block.append(f"# devloop {project} pid {pid} end")
    text = path.read_text()
    if text and not text.endswith("\n"):
        text += "\n"
    _write(path, text + "\n".join(block) + "\n")


def taken(names: Sequence[str], path: Path = HOSTS) -> list[str]:
    """Which of `names` a live block of another devloop maps already (the first entry wins)."""
    if not path.exists():
        return []
    out = []
    for m in _BLOCK.finditer(path.read_text()):
        if int(m.group("pid")) == os.getpid() or not _alive(int(m.group("pid"))):
            continue
        mapped = {w for line in m.group(0).splitlines()[1:-1] for w in line.split()[1:]}
        out += [n for n in names if n in mapped and n not in out]
    return out


def remove(project: str | None, *, only_stale: bool = False, path: Path = HOSTS) -> int:
    """Remove this project's blocks (those of dead processes and our own, with `only_stale`);
    `project` None: the blocks of dead processes of any project. How many."""
    if not path.exists():
        return 0
    text = path.read_text()
    removed = 0

    def drop(m: re.Match[str]) -> str:
        nonlocal removed
        pid = int(m.group("pid"))
        if project is None:
            keep = _alive(pid)
        else:
            keep = m.group("project") != project or (
                only_stale and pid != os.getpid() and _alive(pid)
            )
        if keep:
            return m.group(0)
        removed += 1
        return ""

    new = _BLOCK.sub(drop, text)
    if new != text:
        _write(path, new)
    return removed


def _write(path: Path, text: str) -> None:
    with path.open("r+") as f:
        f.seek(0)
        f.write(text)
        f.truncate()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
