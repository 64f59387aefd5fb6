"""8b. `then: restart` → served, minus the app's own cold start in the same container (Docker).

    .venv/bin/python bench/bench_restart.py [runs]

Two throwaway devloop/python:3 containers (devloop-benchrst-*) run `python3 -m http.server`
under the supervisor: one with this checkout's supervisor, restarted through the open sync
channel (what `devloop dev` does now); one with main's supervisor before issue 16 (given as
`OLD_SUPERVISOR`, a file path; skipped when absent), restarted by an exec of its restart script.
The reference starts the same server on a spare port of the first container from a shell that
is already open (one write, as the channel's), until it serves. Each time runs from just before
the restart (or start) until an HTTP GET is answered (polled every 1 ms); rounds interleaved.
"""

from __future__ import annotations

import importlib.util
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import Callable
from types import ModuleType

import docker
from common import BENCH_LABEL, Stats, Table, ms

from devloop.runtime import supervisor
from devloop.runtime.docker.stream import DockerTransport, docker_exec
from devloop.sync.channel import Channel

APP = ["python3", "-m", "http.server", "8000"]
REF = (
    "while read -r cmd; do case $cmd in "
    "start) python3 -m http.server 8001 >/dev/null 2>&1 & pid=$!; echo ok ;; "
    "stop) kill $pid; wait $pid; echo ok ;; esac; done"
)


def served(port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(12).startswith(b"HTTP/1.0 200"):
                    return
        except OSError:
            pass
        time.sleep(0.001)
    raise RuntimeError(f"port {port} never served")


def _old_supervisor() -> ModuleType | None:
    path = os.environ.get("OLD_SUPERVISOR")
    if not path or not os.path.exists(path):
        return None
    spec = importlib.util.spec_from_file_location("old_supervisor", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(runs: int = 30) -> dict[str, list[float]]:
    client = docker.from_env()
    api = client.api
    tag = uuid.uuid4().hex[:8]
    old = _old_supervisor()
    made = []

    def container(sup: ModuleType, k: str) -> tuple[str, int, int]:
        c = client.containers.run(
            "devloop/python:3", sup.wrap(APP), detach=True, name=f"devloop-benchrst-{tag}-{k}",
            labels={BENCH_LABEL: "restart"}, ports={"8000/tcp": None, "8001/tcp": None},
            stop_signal="SIGKILL",
        )  # fmt: skip
        made.append(c)
        c.reload()
        p = c.attrs["NetworkSettings"]["Ports"]
        return str(c.id), int(p["8000/tcp"][0]["HostPort"]), int(p["8001/tcp"][0]["HostPort"])

    try:
        new_id, new_port, ref_port = container(supervisor, "new")
        served(new_port)
        channel = Channel(lambda argv: DockerTransport(api, new_id, argv), "bench")
        channel.warm()
        ref = DockerTransport(api, new_id, ["sh", "-c", REF])
        methods: dict[str, Callable[[], None]] = {}

        def restart_new() -> None:
            assert channel.restart()
            served(new_port)

        def reference() -> None:
            ref.send(b"start\n")
            ref.readline(10)
            served(ref_port)

        methods["restart (channel, new supervisor)"] = restart_new
        methods["app's own start, same container"] = reference
        if old is not None:
            old_id, old_port, _ = container(old, "old")
            served(old_port)

            def restart_old() -> None:
                code, out = docker_exec(api, old_id, old.restart_argv())
                assert code == 0, out
                served(old_port)

            methods["restart (exec, main's supervisor)"] = restart_old
        times: dict[str, list[float]] = {m: [] for m in methods}
        for _ in range(runs):
            order = list(methods)
            random.shuffle(order)
            for name in order:
                start = time.perf_counter()
                methods[name]()
                times[name].append((time.perf_counter() - start) * 1000)
                if name.startswith("app's"):
                    ref.send(b"stop\n")
                    ref.readline(10)
        channel.close()
        ref.close()
        return times
    finally:
        for c in made:
            c.remove(force=True)
        client.close()


def table(times: dict[str, list[float]], goal: float = 20.0) -> Table:
    t = Table(
        "8b. `then: restart` → served vs the app's own start (Docker, python -m http.server)",
        ["measure", "p50 ms", "p95 ms", "max ms", "n", "p50 minus app start"],
    )
    base = Stats.of(times["app's own start, same container"]).p50
    for name, values in times.items():
        s = Stats.of(values)
        t.add(name, ms(s.p50), ms(s.p95), ms(s.max), s.n, ms(s.p50 - base))
    added = Stats.of(times["restart (channel, new supervisor)"]).p50 - base
    t.notes.append(
        f"goal: restart adds ≤ {goal:.0f} ms at p50: {added:.1f} ms → "
        f"{'PASS' if added <= goal else 'MISS'}"
    )
    return t


if __name__ == "__main__":
    print(table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 30)).text())
