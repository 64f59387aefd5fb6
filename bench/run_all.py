"""Every benchmark of issue 6, one table each, written to bench/RESULTS.md (`make bench`).

    /work/venv/bin/python bench/run_all.py [--quick] [--only NAME ...] [--skip NAME ...]

Needs the Docker engine and devloop/busybox (bash .ci/services.sh). Every object it
creates is named devloop-bench* / bench* and removed afterwards. A benchmark that fails
still leaves the others' tables in RESULTS.md, with its error; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bench_burst
import bench_channel
import bench_digest
import bench_e2e
import bench_fanout
import bench_kube
import bench_peers
import bench_rebuild
import bench_restart
import bench_stages
import bench_start
import bench_watch
import docker
from common import Table, machine, results_markdown, versions
from devrun import DevRun, bench_project

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass(frozen=True)
class Sizes:
    """How much of everything: full by default, --quick for a smoke run."""

    edits: int  # per end-to-end series (1 file, 20 files)
    transfers: int  # per transfer method
    profile_edits: int
    burst_files: int
    rebuild_rounds: int
    digest_files: int
    digest_rounds: int
    watch_files: int
    watch_runs: int
    watch_idle_s: float

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(40, 40, 30, 2000, 1, 10_000, 3, 100_000, 1, 5.0)
        return cls(200, 200, 100, 2000, 3, 10_000, 5, 100_000, 2, 10.0)


Runner = Callable[[docker.DockerClient, Sizes], list[Table]]


def e2e(client: docker.DockerClient, n: Sizes) -> list[Table]:
    """1 and 3 on one `devloop dev` session, then the stage profile (1b) without one."""
    with bench_project(client, "e2e") as proj, DevRun(client, proj) as run:
        series = bench_e2e.measure(run, n.edits)
        peers = bench_peers.transfer(run, n.transfers // 2)
    with bench_project(client, "stages") as proj:
        stages = bench_stages.measure(client, proj, n.profile_edits)
    return [
        bench_e2e.table(series),
        bench_peers.table(series[0], peers),
        bench_stages.table(stages),
    ]


def transfer(client: docker.DockerClient, n: Sizes) -> list[Table]:
    return [bench_channel.table(bench_channel.run(n.transfers))]


def burst(client: docker.DockerClient, n: Sizes) -> list[Table]:
    with bench_project(client, "burst") as proj, DevRun(client, proj) as run:
        return [bench_burst.table(bench_burst.measure(run, n.burst_files))]


def rebuild(client: docker.DockerClient, n: Sizes) -> list[Table]:
    with bench_project(client, "rebuild") as proj, DevRun(client, proj) as run:
        outcomes = bench_rebuild.measure(run, n.rebuild_rounds)
    digest = bench_digest.run(n.digest_files, n.digest_rounds)
    return [
        bench_rebuild.table(outcomes),
        bench_digest.table(n.digest_files, digest),
    ]


def watch(client: docker.DockerClient, n: Sizes) -> list[Table]:
    counts, seconds, runs = bench_watch.run(n.watch_files, n.watch_idle_s, 50, n.watch_runs)
    t = bench_watch.table(counts, runs)
    t.notes.append(f"idle CPU measured over {n.watch_idle_s:g} s; generating took {seconds:.0f} s")
    return [t]


def kube(client: docker.DockerClient, n: Sizes) -> list[Table]:
    return bench_kube.run(n.edits, n.transfers // 2)


def fanout(client: docker.DockerClient, n: Sizes) -> list[Table]:
    return [bench_fanout.table(bench_fanout.run(n.transfers // 2))]


def restart(client: docker.DockerClient, n: Sizes) -> list[Table]:
    return [bench_restart.table(bench_restart.run(30))]


def start(client: docker.DockerClient, n: Sizes) -> list[Table]:
    return [bench_start.table(bench_start.run(3))]


RUNNERS: dict[str, Runner] = {
    "e2e": e2e,
    "transfer": transfer,
    "burst": burst,
    "rebuild": rebuild,
    "watch": watch,
    "kube": kube,
    "fanout": fanout,
    "restart": restart,
    "start": start,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=RUNNERS, default=list(RUNNERS))
    parser.add_argument("--skip", nargs="+", choices=RUNNERS, default=[])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = Sizes.of(args.quick)
    client = docker.from_env(timeout=300)
    facts = {
        "Machine": machine(),
        "Versions": versions(str(client.version().get("Version", "unknown"))),
        "Load": {"1-min load average at start": f"{os.getloadavg()[0]:.2f}"},
    }
    tables: list[Table] = []
    failed = False
    started = time.monotonic()
    try:
        for name in [r for r in args.only if r not in args.skip]:
            t0 = time.monotonic()
            print(f"-- {name} ...", flush=True)
            try:
                new = RUNNERS[name](client, sizes)
            except Exception as exc:  # one broken benchmark must not lose the others' results
                failed = True
                traceback.print_exc()
                new = [_failure(name, exc)]
            for t in new:
                print(t.text(), flush=True)
            tables += new
            print(f"-- {name}: {time.monotonic() - t0:.0f} s", flush=True)
    finally:
        client.close()
    facts["Load"]["at end"] = f"{os.getloadavg()[0]:.2f}"
    facts["Load"]["total run time"] = f"{time.monotonic() - started:.0f} s"
    tables.sort(key=lambda t: t.title)  # titles start with the item numbers
    mode = "--quick" if args.quick else "full"
    args.results.write_text(results_markdown(facts, tables, mode), encoding="utf-8")
    print(f"wrote {args.results}")
    return 1 if failed else 0


def _failure(name: str, exc: Exception) -> Table:
    t = Table(f"9. {name}: FAILED", ["error"])
    t.add(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    return t


if __name__ == "__main__":
    sys.exit(main())
