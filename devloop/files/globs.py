"""Path globs for sync rules: `*`, `?`, `[..]` and `**`, compiled once to a regular expression."""

from __future__ import annotations

import fnmatch
import functools
import re


@functools.lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regex matching the '/'-separated relative paths `pattern` names.

    `*`, `?` and `[..]` stay within one path segment; a `**` segment spans any
    number of directories (none included), and a trailing `/**` everything below.
    """
    segments = pattern.strip("/").split("/")
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
        else:
            out.append(_segment(seg) + ("" if last else "/"))
    return re.compile("".join(out))


def glob_match(pattern: str, rel: str) -> bool:
    """Whether context-relative `rel` is one of the paths `pattern` names."""
    return compile_glob(pattern).fullmatch(rel) is not None


def may_match_below(pattern: str, rel_dir: str) -> bool:
    """Whether `pattern` could name something strictly inside directory `rel_dir`.

    Conservative (a `**` anywhere says yes): used to decide that a directory can
    go unwatched, where a wrong "no" would lose changes and a wrong "yes" only
    costs a few inotify watches.
    """
    segs = [s for s in pattern.strip("/").split("/") if s not in ("", ".")]
    dirs = rel_dir.split("/")
    for i, seg in enumerate(segs):
        if seg == "**" or i >= len(dirs):
            return True  # the pattern goes on below rel_dir (or may, at any depth)
        if not fnmatch.fnmatchcase(dirs[i], seg):
            return False
    return False


def _segment(seg: str) -> str:
    """One path segment's glob → regex, never crossing '/'."""
    out: list[str] = []
    i = 0
    while i < len(seg):
        c = seg[i]
        if c == "*":
            while i + 1 < len(seg) and seg[i + 1] == "*":  # 'a**b' inside a segment is just '*'
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := _class_end(seg, i)) > 0:
            body = seg[i + 1 : end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif c == "\\" and i + 1 < len(seg):
            i += 1
            out.append(re.escape(seg[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _class_end(seg: str, start: int) -> int:
    """Index of the `]` closing the class opened at `start`, or -1 (then `[` is literal)."""
    i = start + 1
    if i < len(seg) and seg[i] in "!^":
        i += 1
    if i < len(seg) and seg[i] == "]":  # a leading ']' is a member, as in fnmatch
        i += 1
    end = seg.find("]", i)
    return end
