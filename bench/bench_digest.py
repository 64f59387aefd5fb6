"""Benchmark: the input digest (image tag) of a 10,000-file build context, cold and warm.

Run: `python bench/bench_digest.py [--files N] [--rounds R]`. Target: well under a second warm.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

from common import Table

from devloop.build import digest
from devloop.model.project import Service


def make_context(root: Path, files: int) -> None:
    """`files` small source files in 100 directories, a Dockerfile, and an ignored tree."""
    per_dir = 100
    for i in range(files):
        d = root / "src" / f"pkg{i // per_dir:03d}"
        if i % per_dir == 0:
            d.mkdir(parents=True)
        (d / f"mod{i:05d}.py").write_bytes(
            f"# module {i}\n".encode() + os.urandom(512).hex().encode()
        )
    (root / "Dockerfile").write_text("FROM devloop/busybox\nCOPY . /app\n")
    (root / ".dockerignore").write_text("build/\n*.log\n")
    (root / "build").mkdir()
    for i in range(200):
        (root / "build" / f"out{i}.o").write_bytes(b"\0" * 256)
    # the stat cache only trusts files whose mtime and ctime settled (see digest._SETTLE_NS)
    time.sleep(digest._SETTLE_NS / 1e9 + 0.1)


def service(root: Path) -> Service:
    return Service(
        name="bench",
        image="bench/app",
        context=root,
        dockerfile=root / "Dockerfile",
        target=None,
        build_args=types.MappingProxyType({}),
        builder=None,
        manifests=(),
        archetype="worker",
        values=types.MappingProxyType({}),
        sync=(),
        ports=(),
        env=types.MappingProxyType({}),
        requires=(),
    )


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def run(files: int, rounds: int) -> list[tuple[str, list[float]]]:
    """Milliseconds per round: cold (no stat cache), warm, and warm with one file edited."""
    with tempfile.TemporaryDirectory(prefix="devloop-bench-digest-") as tmp:
        root = Path(tmp)
        make_context(root, files)
        svc = service(root)

        def cold() -> None:
            digest.CACHE.clear()
            digest.service_tag(svc, {})

        def warm() -> None:
            digest.service_tag(svc, {})

        rows = [("cold (no stat cache)", timed(cold, rounds))]
        warm()
        rows.append(("warm (stat cache)", timed(warm, rounds)))
        target = root / "src" / "pkg000" / "mod00000.py"

        def edited() -> None:
            target.write_text(str(time.time()))
            warm()

        rows.append(("warm, 1 file edited", timed(edited, rounds)))
        return rows


def table(files: int, rows: list[tuple[str, list[float]]]) -> Table:
    t = Table(
        f"5b. Digest (image tag) of a {files:,}-file context",
        ["case", "median ms", "min ms", "max ms", "rounds"],
    )
    for name, ms in rows:
        t.add(name, f"{statistics.median(ms):.1f}", f"{min(ms):.1f}", f"{max(ms):.1f}", len(ms))
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(table(args.files, run(args.files, args.rounds)).text())


if __name__ == "__main__":
    main()
