"""Peer configurations: devloop's end-to-end figure next to each peer's quiet window plus its
transfer.

The transfers are timed on the very container `devloop dev` runs, with the file the
end-to-end series edits (site/index.html → /www/index.html), right after that series.
The payloads are written from a copy of the context, so devloop's watcher does not see
them. Peers' own watcher latency is left out: the figures flatter them, not devloop.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from bench_channel import compare, payload_maker
from bench_e2e import Series
from bench_stages import STEP_MS
from common import Stats, Table, ms
from devrun import DevRun

from devloop import config

# (tool, quiet window in ms, transfer it uses) -- see /work/shared/ANCHORS.md
PEERS = (
    ("docker compose watch", 500, "put_archive"),
    ("Tilt", 200, "exec tar"),
    ("Skaffold", 1000, "exec tar"),
)


def transfer(run: DevRun, runs: int) -> dict[str, list[float]]:
    """Each transfer method's milliseconds for one file, on the dev loop's own container."""
    svc = config.load(run.proj.root).services["web"]
    mirror = Path(tempfile.mkdtemp(prefix="devloop-bench-peers-"))
    try:
        (mirror / "site").mkdir()
        copy = dataclasses.replace(svc, context=mirror)
        make = payload_maker(copy, svc.sync[0], ["site/index.html"])
        return compare(run.client.api, str(run.container().id), make, runs)
    finally:
        shutil.rmtree(mirror, ignore_errors=True)


def table(one_file: Series, times: dict[str, list[float]], where: str = "Docker") -> Table:
    t = Table(
        f"3. Peer configurations, one file ({where}; transfers on the dev loop's container)",
        ["configuration", "quiet window ms", "transfer p50", "transfer p95", "total p50",
         "total p95", "total p50 / devloop p50"],
    )  # fmt: skip
    e2e = Stats.of(one_file.visible_ms)
    t.add("devloop dev (measured: write → visible)", f"{STEP_MS} (step)", "-", "-", ms(e2e.p50),
          ms(e2e.p95), "1.0x")  # fmt: skip
    chan = Stats.of(times["channel"])
    t.add("  its channel alone, same container", "-", ms(chan.p50), ms(chan.p95), "-", "-", "-")
    for tool, window, method in PEERS:
        s = Stats.of(times[method])
        total50, total95 = window + s.p50, window + s.p95
        t.add(f"{tool}: {window} ms + {method}", window, ms(s.p50), ms(s.p95), ms(total50),
              ms(total95), f"{total50 / e2e.p50:.0f}x")  # fmt: skip
    t.notes.append(
        "peer totals = quiet window + transfer only (their watcher latency left out); "
        f"transfers: {Stats.of(times['channel']).n} interleaved runs per method"
    )
    return t
