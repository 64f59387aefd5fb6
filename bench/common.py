"""Shared by the benchmarks: percentiles, result tables, machine and version facts, RESULTS.md."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_LABEL = "devloop.bench"  # every Docker object a benchmark creates carries it


def import_paths() -> None:
    """Let a script run as `python bench/x.py` import `tests.devproc` and its sibling modules."""
    for p in (str(ROOT), str(ROOT / "bench")):
        if p not in sys.path:
            sys.path.insert(0, p)


@dataclass(frozen=True)
class Stats:
    """The spread of one series of milliseconds."""

    n: int
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, ms: Sequence[float]) -> Stats:
        if not ms:
            return cls(0, float("nan"), float("nan"), float("nan"))
        ordered = sorted(ms)
        return cls(len(ms), statistics.median(ordered), percentile(ordered, 95), ordered[-1])


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `pct`% of values at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without float surprises
    return ordered[int(rank) - 1]


def verdict(value: float, limit: float) -> str:
    return "PASS" if value <= limit else "MISS"


def ms(value: float) -> str:
    return f"{value:.1f}"


@dataclass
class Table:
    """One benchmark's result: printed to the terminal and written to RESULTS.md as Markdown."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", _md_row(self.headers)]
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += [_md_row(r) for r in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        widths = [
            max(len(r[i]) for r in [self.headers, *self.rows]) for i in range(len(self.headers))
        ]
        out = [f"== {self.title}", _text_row(self.headers, widths)]
        out.append("  ".join("-" * w for w in widths))
        out += [_text_row(r, widths) for r in self.rows]
        out += [f"  * {n}" for n in self.notes]
        return "\n".join(out) + "\n"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _text_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))


def machine() -> dict[str, str]:
    """CPU model, cores, RAM and kernel of this machine."""
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "RAM": f"{_mem_total_kib() / 1024 / 1024:.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()}",
    }


def versions(docker_version: str) -> dict[str, str]:
    return {
        "Python": platform.python_version(),
        "Docker Engine": docker_version,
        "devloop": _dist_version("devloop"),
        "watchfiles": _dist_version("watchfiles"),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_kib() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def results_markdown(facts: dict[str, dict[str, str]], tables: Sequence[Table], mode: str) -> str:
    """The whole of RESULTS.md: when, where, with what, then every table."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = ["# Benchmark results", "", f"Written by `make bench` ({mode}) on {now}.", ""]
    for heading, items in facts.items():
        out.append(f"**{heading}:** " + ", ".join(f"{k} {v}" for k, v in items.items()) + "  ")
    out.append("")
    out += [t.markdown() for t in tables]
    return "\n".join(out)
