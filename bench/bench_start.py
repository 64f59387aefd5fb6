"""Fast start: `devloop dev` of the quickstart (devloop.yaml + samples/) with every image built.

    .venv/bin/python bench/bench_start.py [runs]

Copies the quickstart into a temporary directory under a unique name with free host ports,
runs `devloop dev --output json --no-ui` once to build (not timed), then `runs` times from
the process start until every deployed service has said `ready`, Ctrl-C and clean-up between
runs. Also gives when the first `deploy` and the last `build_skipped` came (stage timestamps).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
from common import ROOT, Stats, Table, import_paths, ms

import_paths()
from devrun import free_port, remove_objects  # noqa: E402

from tests.devproc import DevProcess  # noqa: E402

SERVICES = ("hello", "python-web", "node-web", "api", "frontend")


def project(tmp: Path, name: str) -> Path:
    shutil.copytree(ROOT / "samples", tmp / "samples")
    text = (ROOT / "devloop.yaml").read_text()
    text = re.sub(r"^name: samples$", f"name: {name}", text, flags=re.M)
    text = re.sub(r'"(\d+):(\d+)"', lambda m: f'"{free_port()}:{m.group(2)}"', text)
    (tmp / "devloop.yaml").write_text(text)
    return tmp


def once(root: Path, timeout: float = 600) -> dict[str, float]:
    start = time.monotonic()
    dev = DevProcess(root, "--no-ui")
    try:
        for svc in SERVICES:
            dev.wait_event("ready", service=svc, timeout=timeout)
        ready = (time.monotonic() - start) * 1000
        ts = {e["event"]: e["ts"] for e in reversed(dev.events)}
        first_ts = min(e["ts"] for e in dev.events)
        out = {"ready": ready}
        for kind in ("build_skipped", "deploy"):
            firsts = [e["ts"] for e in dev.events if e["event"] == kind]
            if firsts:
                out[f"first {kind}"] = (min(firsts) - first_ts) * 1000
                out[f"last {kind}"] = (max(firsts) - first_ts) * 1000
        out["last ready (event ts)"] = (ts["ready"] - first_ts) * 1000
        return out
    finally:
        dev.interrupt()


def run(runs: int = 3) -> dict[str, list[float]]:
    client = docker.from_env()
    name = f"benchstart-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp), name)
        try:
            once(root)  # builds whatever is not built yet
            times: dict[str, list[float]] = {}
            for _ in range(runs):
                remove_objects(client, name)
                for k, v in once(root).items():
                    times.setdefault(k, []).append(v)
            return times
        finally:
            remove_objects(client, name)
            client.close()


def table(times: dict[str, list[float]], goal: float = 1500.0) -> Table:
    t = Table(
        "8c. Fast start: quickstart (5 services), images built → every service ready",
        ["measure", "p50 ms", "max ms", "n"],
    )
    for k, v in times.items():
        s = Stats.of(v)
        t.add(k, ms(s.p50), ms(s.max), s.n)
    p50 = Stats.of(times["ready"]).p50
    t.notes.append(
        f"goal ≤ {goal:.0f} ms: {p50:.0f} ms → {'PASS' if p50 <= goal else 'MISS'}; "
        "ready: from the process start; the others: from devloop's first event"
    )
    return t


if __name__ == "__main__":
    print(table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3)).text())
