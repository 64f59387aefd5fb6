"""Rebuild decision: changes that must not rebuild or redeploy, while `devloop dev` runs.

    /work/venv/bin/python bench/bench_rebuild.py [--rounds N]

(a) a file outside the sync rules touched with identical content (once by rewriting it,
once by `touch`, i.e. os.utime): the content tag is unchanged, so the build is skipped
and nothing is redeployed; (b) an edit to a .dockerignore'd file: nothing at all. Reports
builds performed (target 0), deploys, whether the container was replaced, and the
decision time (write → the event that settles it, from the events' `ts`). Then the digest
time of a 10,000-file context (bench_digest).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bench_digest
import docker
from common import Table
from devrun import DevRun, bench_project

SETTLE_S = 1.5  # after the decision: long enough for a deploy or a new container to show


def _rewrite(path: Path) -> None:
    path.write_bytes(path.read_bytes())


def _touch(path: Path) -> None:
    os.utime(path)


def _edit(path: Path) -> None:
    path.write_text(f"edited {time.time()}\n")


# (case, file relative to the context, action, the event that shows the decision)
CASES: tuple[tuple[str, str, Callable[[Path], None], str], ...] = (
    ("outside sync rules, rewritten identical", "README.md", _rewrite, "build_skipped"),
    ("outside sync rules, touched (utime)", "README.md", _touch, "build_skipped"),
    (".dockerignore'd file edited", "notes.log", _edit, "changes"),
)


@dataclass
class Outcome:
    case: str
    decided_by: str
    decision_ms: list[float] = field(default_factory=list)
    batches: int = 0
    skipped: int = 0
    builds: int = 0
    deploys: int = 0
    replaced: int = 0  # rounds after which a different container was running
    rounds: int = 0


def measure(run: DevRun, rounds: int) -> list[Outcome]:
    out = []
    for case, rel, act, decided_by in CASES:
        o = Outcome(case, decided_by)
        for _ in range(rounds):
            _round(run, run.proj.context / rel, act, o)
        out.append(o)
    return out


def _round(run: DevRun, path: Path, act: Callable[[Path], None], o: Outcome) -> None:
    before = run.container().id
    mark = run.mark()
    t_wall = time.time()
    act(path)
    deadline = time.monotonic() + (60 if o.decided_by == "build_skipped" else SETTLE_S)
    while time.monotonic() < deadline and not run.events(o.decided_by, mark):
        time.sleep(0.005)
    if run.events("build_started", mark):  # a real build: wait for it to finish
        run.wait("ready", mark, timeout=300)
    time.sleep(SETTLE_S)
    decided = run.events(o.decided_by, mark)
    if decided:
        o.decision_ms.append((float(decided[0]["ts"]) - t_wall) * 1000)
    o.rounds += 1
    o.batches += len(run.events("changes", mark))
    o.skipped += len(run.events("build_skipped", mark))
    o.builds += len(run.events("build_started", mark))
    o.deploys += len(run.events("deploy", mark))
    o.replaced += int(run.container().id != before)


def table(outcomes: list[Outcome]) -> Table:
    t = Table(
        "5. Rebuild decision (while `devloop dev` runs)",
        ["change", "rounds", "batches", "builds (target 0)", "skipped", "deploys",
         "container replaced", "decision ms (median)", "decided by"],
    )  # fmt: skip
    for o in outcomes:
        med = f"{statistics.median(o.decision_ms):.0f}" if o.decision_ms else "no event"
        verdict = "PASS" if o.builds == 0 else "MISS"
        t.add(o.case, o.rounds, o.batches, f"{o.builds}: {verdict}", o.skipped, o.deploys,
              o.replaced, med, o.decided_by)  # fmt: skip
    t.notes.append(
        "decision ms: just before the change → the `ts` (1 ms resolution) of the event that "
        "settles it; `changes` for the ignored file means: seen, planned, nothing to do"
    )
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    client = docker.from_env(timeout=300)
    try:
        with bench_project(client, "rebuild") as proj, DevRun(client, proj) as run:
            outcomes = measure(run, args.rounds)
    finally:
        client.close()
    print(table(outcomes).text())
    print(bench_digest.table(args.files, bench_digest.run(args.files, 3)).text())


if __name__ == "__main__":
    main()
