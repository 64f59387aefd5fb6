"""Where a one-file sync's time goes: devloop's own stages, driven in-process and timed one by one.

    /work/venv/bin/python bench/bench_stages.py [--edits N]

The same pipeline `devloop dev` runs (watcher → plan → batch + encode → the instance
lookup the Docker runtime does per sync → channel send → acknowledgement) on the httpd
fixture project against a throwaway busybox container, with a timestamp after each
stage. Two reference round trips split the channel's share: a bare `read; echo` loop in
a long-lived exec (Docker's transport alone), and the sync agent applying the batch.
"""

from __future__ import annotations

import argparse
import inspect
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
from bench_channel import scratch_container
from common import Stats, Table, ms
from devrun import BenchProject, bench_project

from devloop import config
from devloop.files.ignore import PathRules
from devloop.loop import plan
from devloop.model.changes import ChangeBatch
from devloop.model.project import Project
from devloop.runtime.docker.stream import DockerTransport
from devloop.sync import payload as sync
from devloop.sync.channel import Channel
from devloop.watch.watcher import Watcher

STEP_MS = inspect.signature(Watcher.__init__).parameters["step_ms"].default
STAGES = (
    f"write → batch yielded (watcher, {STEP_MS} ms step)",
    "plan",
    "batch + encode (tar)",
    "instance lookup (list + inspect; the session caches it between container changes)",
    "send → ack (agent applies)",
    "total",
)
ECHO_LOOP = 'echo ready; while read -r l; do echo "ok $l"; done'


def measure(client: docker.DockerClient, proj: BenchProject, edits: int) -> dict[str, list[float]]:
    project = config.load(proj.root)
    filters = PathRules(project, ("web",))
    stop = threading.Event()
    batches: queue.Queue[tuple[float, ChangeBatch]] = queue.Queue()
    watcher = Watcher(project, ("web",), stop)

    def feed() -> None:
        for b in watcher:
            batches.put((time.perf_counter(), b))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    times: dict[str, list[float]] = {s: [] for s in (*STAGES, "transport round trip (echo loop)")}
    try:
        with scratch_container(client) as cid:
            channel = Channel(lambda argv: DockerTransport(client.api, cid, argv), "bench")
            rig = _Rig(client.api, cid, project, filters, channel, batches)
            echo = _echo_loop(client.api, cid)
            target = proj.context / "site" / "index.html"
            for i in range(edits + 3):
                row = _one(rig, target, i)
                row["transport round trip (echo loop)"] = echo(i)
                if i >= 3:  # the first ones open the channel
                    for k, v in row.items():
                        times[k].append(v)
                time.sleep(random.uniform(0.02, 0.04))
            channel.close()
    finally:
        stop.set()
        feeder.join(timeout=5)
    return times


@dataclass(frozen=True)
class _Rig:
    """Everything one timed edit needs."""

    api: docker.APIClient
    container: str
    project: Project
    filters: PathRules
    channel: Channel
    batches: queue.Queue[tuple[float, ChangeBatch]]


def _one(rig: _Rig, target: Path, i: int) -> dict[str, float]:
    t0 = time.perf_counter()
    target.write_text(f"e{i}\n")
    t_batch, batch = rig.batches.get(timeout=10)
    decided = plan.plan(rig.project, ("web",), batch, rig.filters)
    t_plan = time.perf_counter()
    [sp] = decided.services
    payload = sync.encode(sync.batch_for_plan(rig.project.services[sp.name], sp.syncs))
    t_enc = time.perf_counter()
    for c in rig.api.containers(filters={"id": rig.container}):  # as DockerRuntime.instances()
        rig.api.inspect_container(c["Id"])
    t_look = time.perf_counter()
    rig.channel.apply(payload)
    t_ack = time.perf_counter()
    cuts = (t0, t_batch, t_plan, t_enc, t_look, t_ack)
    row = {s: (b - a) * 1000 for s, a, b in zip(STAGES, cuts, cuts[1:], strict=False)}
    row["total"] = (t_ack - t0) * 1000
    return row


def _echo_loop(api: docker.APIClient, cid: str) -> Callable[[int], float]:
    io = DockerTransport(api, cid, ["sh", "-c", ECHO_LOOP])
    io.readline(30)

    def once(i: int) -> float:
        start = time.perf_counter()
        io.send(f"{i}\n".encode())
        io.readline(30)
        return (time.perf_counter() - start) * 1000

    return once


def table(times: dict[str, list[float]]) -> Table:
    t = Table(
        "1b. Profile: one-file sync by stage (in-process, same pipeline as `devloop dev`)",
        ["stage", "p50 ms", "p95 ms", "max ms", "n"],
    )
    for stage, values in times.items():
        s = Stats.of(values)
        t.add(stage, ms(s.p50), ms(s.p95), ms(s.max), s.n)
    t.notes.append(
        "send → ack minus the echo-loop round trip is the agent's own work in the container "
        "(dd and tar are forked per batch)"
    )
    return t


def run_standalone(edits: int) -> dict[str, list[float]]:
    client = docker.from_env(timeout=300)
    try:
        with bench_project(client, "stages") as proj:
            return measure(client, proj, edits)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edits", type=int, default=100)
    print(table(run_standalone(parser.parse_args().edits)).text())


if __name__ == "__main__":
    main()
