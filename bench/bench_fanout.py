"""8a. Fan-out: one-file sync to a service with 5 replicas vs 1, through the real channel pool.

    .venv/bin/python bench/bench_fanout.py [runs] [replicas]

Runs `replicas` throwaway busybox containers (devloop-benchfan-*), opens one channel each
through the Docker runtime's transport (as `devloop dev` does), then applies the same
one-file payload to the first container alone and to all of them, interleaved round-robin
so load from elsewhere hits both alike. Each time covers encode + send + every ack.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
from bench_channel import RULE, bench_service, payload_maker
from common import BENCH_LABEL, Stats, Table, ms

from devloop.runtime.base import Instance
from devloop.runtime.docker.stream import DockerTransport
from devloop.sync.pool import ChannelPool


def run(runs: int = 200, replicas: int = 5) -> dict[str, list[float]]:
    client = docker.from_env()
    tag = uuid.uuid4().hex[:8]
    containers = [
        client.containers.run(
            "devloop/busybox",
            ["sleep", "3600"],
            detach=True,
            name=f"devloop-benchfan-{tag}-{k}",
            labels={BENCH_LABEL: "fanout"},
            stop_signal="SIGKILL",
        )
        for k in range(replicas)
    ]
    pool = ChannelPool(lambda inst, argv: DockerTransport(client.api, inst.id, argv))
    try:
        insts = [Instance("bench", str(c.id), str(c.name), "busybox", "1") for c in containers]
        with tempfile.TemporaryDirectory() as tmp:
            ctx = Path(tmp)
            (ctx / "app").mkdir()
            make = payload_maker(bench_service(ctx), RULE, ["app/f00.py"])
            sets = {"1 replica": insts[:1], f"{replicas} replicas": insts}
            pool.warm("bench", insts)
            times: dict[str, list[float]] = {k: [] for k in sets}
            for i in range(runs):
                order = list(sets)
                random.shuffle(order)
                for name in order:
                    start = time.perf_counter()
                    # "bench-one": a service of its own, so the 5-replica set keeps its channels
                    service = "bench" if len(sets[name]) > 1 else "bench-one"
                    pool.sync(service, sets[name], make(i))
                    times[name].append((time.perf_counter() - start) * 1000)
            return times
    finally:
        pool.close()
        for c in containers:
            c.remove(force=True)
        client.close()


def table(times: dict[str, list[float]], goal: float = 1.5) -> Table:
    t = Table(
        "8a. Fan-out: one-file sync, 5 replicas vs 1 (Docker, channels in parallel)",
        ["replicas", "p50 ms", "p95 ms", "max ms", "n", "p50 ÷ 1 replica p50"],
    )
    names = list(times)
    base = Stats.of(times[names[0]]).p50
    for name in names:
        s = Stats.of(times[name])
        t.add(name, ms(s.p50), ms(s.p95), ms(s.max), s.n, f"{s.p50 / base:.2f}x")
    ratio = Stats.of(times[names[-1]]).p50 / base
    t.notes.append(
        f"goal: ≤ {goal}x at p50: {ratio:.2f}x → {'PASS' if ratio <= goal else 'MISS'}; "
        "each time covers encode + send + every container's ack"
    )
    return t


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    r = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print(table(run(n, r)).text())
