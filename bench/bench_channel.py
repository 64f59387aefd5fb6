"""Time one-file syncs three ways: the long-lived channel, put_archive, and one `tar` exec per batch.

    /work/venv/bin/python bench/bench_channel.py [runs]

Runs a throwaway busybox container (devloop-benchsync-*), prints p50/p95 per method
(encode + apply + acknowledgement), and removes the container. Needs the Docker engine
and the devloop/busybox image.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker

from devloop import sync
from devloop.channel import Channel
from devloop.project import Service, SyncRule
from devloop.runtime.docker_stream import DockerTransport, docker_exec

RULE = SyncRule(src="app/**", dest="/srv/app", then="none", strip="app")
TAR_ARGV = ["tar", "-x", "-m", "-o", "-f", "-", "-C", "/"]


def one_file_payload(ctx: Path, i: int) -> sync.Payload:
    (ctx / "app/main.py").write_text(f"print({i})\n" * 20)
    svc = Service(name="bench", image="bench", context=ctx, dockerfile=ctx / "Dockerfile", target=None,
                  build_args={}, builder=None, manifests=(), archetype=None, values={}, sync=(RULE,),
                  ports=(), env={}, requires=())
    return sync.encode(sync.batch_for(svc, RULE, ["app/main.py"]))


def measure(runs: int, ctx: Path, apply: Callable[[sync.Payload], object]) -> list[float]:
    apply(one_file_payload(ctx, -1))  # warm up: opens the channel, creates /srv/app
    times = []
    for i in range(runs):
        start = time.perf_counter()
        apply(one_file_payload(ctx, i))
        times.append((time.perf_counter() - start) * 1000)
    return times


def report(name: str, times: list[float]) -> None:
    q = statistics.quantiles(times, n=20)
    print(f"{name:<22} p50 {statistics.median(times):6.1f} ms   p95 {q[18]:6.1f} ms   n={len(times)}")


def main(runs: int) -> None:
    client = docker.from_env()
    api = client.api
    container = client.containers.run("devloop/busybox", ["sleep", "3600"], detach=True,
                                      name=f"devloop-benchsync-{uuid.uuid4().hex[:8]}",
                                      labels={"devloop.bench": "sync"}, stop_signal="SIGKILL")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = Path(tmp)
            (ctx / "app").mkdir()
            channel = Channel(lambda argv: DockerTransport(api, str(container.id), argv), "bench")
            report("channel (long-lived)", measure(runs, ctx, channel.apply))
            channel.close()
            report("put_archive", measure(runs, ctx, lambda p: api.put_archive(
                container.id, "/", p.archive)))
            report("exec tar per batch", measure(runs, ctx, lambda p: _exec_tar(api, str(container.id), p)))
    finally:
        container.remove(force=True)
        client.close()


def _exec_tar(api: docker.APIClient, container: str, payload: sync.Payload) -> None:
    code, out = docker_exec(api, container, TAR_ARGV, payload.archive)
    if code != 0:
        raise SystemExit(f"tar failed: {out!r}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
