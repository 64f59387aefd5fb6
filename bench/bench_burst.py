"""Burst: 2,000 files written at once (a branch switch) while `devloop dev` runs.

    /work/venv/bin/python bench/bench_burst.py [--files N]

Counts the batches (`changes` events), rebuilds (`build_started`) and syncs (`sync`
events) the burst caused, times how long until the container's tree equals the local one
(an md5 listing via docker exec, compared with the local files) and checks that it does.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from common import Table
from devrun import DevRun, bench_project

from devloop import config
from devloop.runtime.docker.stream import docker_exec
from devloop.sync import payload as sync

LISTING = "cd /www/burst 2>/dev/null && find . -type f | sort | xargs md5sum"
REF_DIR = "/tmp/devloop-bench-ref"
SETTLE_S = 3.0  # after the trees match, how long to keep counting late batches


@dataclass(frozen=True)
class Burst:
    files: int
    write_ms: float
    batches: int
    rebuilds: int
    syncs: int
    files_synced: int
    equal: bool
    ms_to_equal: float  # upper bound: the end of the first listing that matched
    ms_to_last_ack: float  # from the `ts` of the last sync event
    errors: int
    floor_ms: float  # one tar exec of the same files into a fresh directory, same container


def measure(run: DevRun, files: int, timeout: float = 180.0) -> Burst:
    mark = run.mark()
    burst = run.proj.context / "site" / "burst"
    t_wall, t0 = time.time(), time.perf_counter()
    for i in range(files):
        d = burst / f"d{i % 20:02d}"
        if i < 20:
            d.mkdir(parents=True)
        (d / f"f{i:04d}.txt").write_text(f"file {i}\n")
    write_ms = (time.perf_counter() - t0) * 1000
    local = sorted(
        f"{hashlib.md5(p.read_bytes()).hexdigest()}  ./{p.relative_to(burst).as_posix()}"
        for p in burst.rglob("*.txt")
    )
    container = run.container()
    deadline = time.monotonic() + timeout
    equal, done = False, t0
    while not equal and time.monotonic() < deadline:
        equal = _listing(container) == local
        done = time.perf_counter()
        if not equal:
            time.sleep(0.1)
    time.sleep(SETTLE_S)
    syncs = run.events("sync", mark)
    return Burst(
        files, write_ms, len(run.events("changes", mark)), len(run.events("build_started", mark)),
        len(syncs), sum(int(e["files"]) for e in syncs), equal, (done - t0) * 1000,
        _last_ack_ms(syncs, t_wall), len(run.errors(mark)), _floor_ms(run, burst),
    )  # fmt: skip


def _floor_ms(run: DevRun, burst: Path) -> float:
    """The same files as one tar, extracted by one `tar -x` exec into a fresh directory of the
    same container: what its filesystem costs, whoever sends the files."""
    svc = config.load(run.proj.root).services["web"]
    rels = [p.relative_to(svc.context).as_posix() for p in burst.rglob("*.txt")]
    payload = sync.encode(sync.batch_for(svc, svc.sync[0], rels))
    argv = ["sh", "-c", f"mkdir -p {REF_DIR} && exec tar -x -m -o -f - -C {REF_DIR}"]
    start = time.perf_counter()
    code, out = docker_exec(
        run.client.api, str(run.container().id), argv, payload.archive, timeout=300
    )
    took = (time.perf_counter() - start) * 1000
    if code != 0:
        raise RuntimeError(f"tar of the burst into {REF_DIR} exited {code}: {out[-300:]!r}")
    return took


def _listing(container: Any) -> list[str]:
    out = container.exec_run(["sh", "-c", LISTING]).output.decode(errors="replace")
    return sorted(line for line in out.splitlines() if line.strip())


def _last_ack_ms(syncs: list[dict[str, Any]], t_wall: float) -> float:
    return (max(float(e["ts"]) for e in syncs) - t_wall) * 1000 if syncs else float("nan")


def table(b: Burst, where: str = "Docker") -> Table:
    t = Table(f"4. Burst: {b.files:,} files written at once ({where})", ["measure", "value"])
    t.add("writing the files took", f"{b.write_ms:.0f} ms")
    t.add("batches (`changes` events)", b.batches)
    t.add("rebuilds (`build_started`)", f"{b.rebuilds} (expected 0)")
    t.add("syncs (`sync` events)", b.syncs)
    t.add("files synced", f"{b.files_synced:,}")
    t.add("first write → last sync acknowledged", f"{b.ms_to_last_ack:.0f} ms")
    t.add("first write → container tree equal (listing)", f"{b.ms_to_equal:.0f} ms")
    t.add("reference: the same files, one `tar -x` exec, same container", f"{b.floor_ms:.0f} ms")
    t.add("container tree equals the local tree", "yes: PASS" if b.equal else "NO: FAIL")
    t.add("errors reported", b.errors)
    t.notes.append(
        "tree check: md5 of every file via `docker exec` compared with the local files; its "
        "time is an upper bound (the end of the first listing that matched, polled every 0.1 s)"
    )
    t.notes.append(
        "reference: the burst's files as one tar into a fresh directory of the same container, "
        "right after the burst: the container filesystem's own cost, whoever sends the files"
    )
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    client = docker.from_env(timeout=300)
    try:
        with bench_project(client, "burst") as proj, DevRun(client, proj) as run:
            print(table(measure(run, args.files)).text())
    finally:
        client.close()


if __name__ == "__main__":
    main()
