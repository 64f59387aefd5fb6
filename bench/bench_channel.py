"""Transfer alone: the long-lived sync channel vs one put_archive vs one `tar` exec per batch.

    /work/venv/bin/python bench/bench_channel.py [runs]

Runs a throwaway busybox container (devloop-benchsync-*), times the same payloads three
ways (encode + apply + acknowledgement) interleaved round-robin so load from elsewhere hits
every method alike, prints p50/p95/max and the ratios, and removes the container.
`compare` also runs against any other container (bench_peers uses the dev loop's own).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import docker
from common import BENCH_LABEL, Stats, Table, ms

from devloop.model.project import Service, SyncRule
from devloop.runtime.docker.stream import DockerTransport, docker_exec
from devloop.sync import payload as sync
from devloop.sync.channel import Channel

RULE = SyncRule(src="app/**", dest="/srv/app", then="none", strip="app")
TAR_ARGV = ["tar", "-x", "-m", "-o", "-f", "-", "-C", "/"]
METHODS = ("channel", "put_archive", "exec tar")
Apply = Callable[[sync.Payload], object]
MakePayload = Callable[[int], sync.Payload]


def payload_maker(svc: Service, rule: SyncRule, rels: Sequence[str]) -> MakePayload:
    """Payload i: every file in `rels` (context-relative) rewritten with content unique to i."""

    def make(i: int) -> sync.Payload:
        for rel in rels:
            (svc.context / rel).write_text(f"{rel} {i}\n" + "x" * 400 + "\n")
        return sync.encode(sync.batch_for(svc, rule, rels))

    return make


def appliers(api: docker.APIClient, container: str, channel: Channel) -> dict[str, Apply]:
    return {
        "channel": channel.apply,
        "put_archive": lambda p: api.put_archive(container, "/", p.archive),
        "exec tar": lambda p: _exec_tar(api, container, p),
    }


def compare(
    api: docker.APIClient, container: str, make: MakePayload, runs: int
) -> dict[str, list[float]]:
    """Milliseconds per method (make the payload + apply it) on one Docker container."""
    channel = Channel(lambda argv: DockerTransport(api, container, argv), "bench")
    try:
        return time_methods(appliers(api, container, channel), make, runs)
    finally:
        channel.close()


def time_methods(methods: dict[str, Apply], make: MakePayload, runs: int) -> dict[str, list[float]]:
    """Each method applies payload i in turn, in a shuffled order per round, so that load from
    elsewhere hits every method alike. The first round warms up (opens the channel) and is
    dropped."""
    for apply in methods.values():
        apply(make(-1))
    times: dict[str, list[float]] = {m: [] for m in methods}
    for i in range(runs):
        order = list(methods)
        random.shuffle(order)
        for name in order:
            start = time.perf_counter()
            methods[name](make(i))
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def _exec_tar(api: docker.APIClient, container: str, payload: sync.Payload) -> None:
    code, out = docker_exec(api, container, TAR_ARGV, payload.archive)
    if code != 0:
        raise RuntimeError(f"tar in {container[:12]} exited {code}: {out!r}")


def bench_service(ctx: Path) -> Service:
    return Service(
        name="bench", image="bench", context=ctx, dockerfile=ctx / "Dockerfile", target=None,
        build_args=types.MappingProxyType({}), builder=None, manifests=(), archetype=None,
        values=types.MappingProxyType({}), sync=(RULE,), ports=(), env=types.MappingProxyType({}),
        requires=(),
    )  # fmt: skip


@contextmanager
def scratch_container(client: docker.DockerClient) -> Iterator[str]:
    """A busybox container that only sleeps, removed afterwards; yields its id."""
    container = client.containers.run(
        "devloop/busybox", ["sleep", "3600"], detach=True,
        name=f"devloop-benchsync-{uuid.uuid4().hex[:8]}",
        labels={BENCH_LABEL: "channel"}, stop_signal="SIGKILL",
    )  # fmt: skip
    try:
        yield str(container.id)
    finally:
        container.remove(force=True)


def run(runs: int, batch_sizes: Sequence[int] = (1, 20)) -> dict[int, dict[str, list[float]]]:
    """Timings per batch size (files per batch), on one throwaway container; batches of more
    than one file get half the runs (they take longer, and the target is about one file)."""
    client = docker.from_env()
    try:
        with scratch_container(client) as cid, tempfile.TemporaryDirectory() as tmp:
            ctx = Path(tmp)
            (ctx / "app").mkdir()
            svc = bench_service(ctx)
            out = {}
            for n in batch_sizes:
                rels = [f"app/f{k:02d}.py" for k in range(n)]
                out[n] = compare(
                    client.api, cid, payload_maker(svc, RULE, rels), runs if n == 1 else runs // 2
                )
            return out
    finally:
        client.close()


def table(results: dict[int, dict[str, list[float]]], target_ratio: float = 15.0) -> Table:
    t = Table(
        "2. Transfer alone (one container, methods interleaved)",
        ["files/batch", "method", "p50 ms", "p95 ms", "max ms", "n", "p50 ÷ channel p50"],
    )
    for n, times in results.items():
        base = Stats.of(times["channel"]).p50
        for method in METHODS:
            s = Stats.of(times[method])
            t.add(n, method, ms(s.p50), ms(s.p95), ms(s.max), s.n, f"{s.p50 / base:.1f}x")
    one = results[min(results)]
    ratio = min(Stats.of(one[m]).p50 for m in METHODS[1:]) / Stats.of(one["channel"]).p50
    verdict = "PASS" if ratio >= target_ratio else "MISS"
    t.notes.append(
        f"target: channel ≥ {target_ratio:.0f}x faster than either at p50 (1 file): "
        f"{ratio:.1f}x → {verdict}"
    )
    t.notes.append("each time covers encoding the tar (same for all), sending it and the answer")
    return t


if __name__ == "__main__":
    print(table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 200)).text())
