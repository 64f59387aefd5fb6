"""Soak: random edits, renames, directory re-creations, branch-switch-like bulk changes and
container faults against a two-service `devloop dev`; after every quiet period the container
trees are compared with the local ones. Not part of the suite: run it by hand.

    .venv/bin/python bench/soak.py --minutes 10 [--faults rm,kill]

Prints counts (edits, faults, files compared, lost or stale files) and exits 1 on any loss.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import docker
from common import import_paths

import_paths()
from tests.devproc import HTTPD_DOCKERFILE, DevProcess, free_port  # noqa: E402

CONFIG = """\
name: {name}
services:
{services}
"""
SERVICE = """\
  {svc}:
    image: devloop-bench-soak/{name}-{svc}
    context: {svc}
    archetype: web
    ports: ["{port}:8080"]
    values: {{probe_path: /index.html}}
    sync:
      - src: "site/**"
        dest: /www
"""
WRITTEN_BY_CMD = {"started.txt", "message.txt"}


def local_tree(site: Path) -> dict[str, str]:
    return {
        p.relative_to(site).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in site.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def container_tree(client: docker.DockerClient, name: str, svc: str) -> dict[str, str] | None:
    label = [f"app.kubernetes.io/part-of={name}", f"devloop.dev/service={svc}"]
    running = client.containers.list(filters={"label": label})
    if not running:
        return None
    _code, out = running[0].exec_run(["sh", "-c", "cd /www && find . -type f -exec md5sum {} +"])
    tree = {}
    for line in out.decode().splitlines():
        digest, _, path = line.partition("  ")
        tree[path.removeprefix("./")] = digest
    return tree


def mutate(rng: random.Random, site: Path, counts: dict[str, int]) -> None:
    files = [p for p in site.rglob("*") if p.is_file()]
    dirs = [p for p in site.rglob("*") if p.is_dir()]
    op = rng.choice(["edit", "edit", "edit", "new", "rename", "delete", "recreate", "branch"])
    if op == "edit" and files:
        rng.choice(files).write_text(uuid.uuid4().hex)
    elif op == "new" or not files:
        d = rng.choice([site, *dirs])
        (d / f"n{uuid.uuid4().hex[:6]}.txt").write_text(uuid.uuid4().hex)
    elif op == "rename":
        f = rng.choice(files)
        f.rename(f.with_name(f"r{uuid.uuid4().hex[:6]}.txt"))
    elif op == "delete" and len(files) > 1:
        rng.choice(files).unlink()
    elif op == "recreate" and dirs:
        d = rng.choice(dirs)
        shutil.rmtree(d)
        d.mkdir()
        for i in range(3):
            (d / f"c{i}.txt").write_text(uuid.uuid4().hex)
    elif op == "branch":
        b = site / "branch"
        shutil.rmtree(b, ignore_errors=True)
        for i in range(rng.randint(20, 200)):
            p = b / f"d{i % 7}" / f"f{i}.txt"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(uuid.uuid4().hex)
    counts["edits"] += 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--faults", default="rm,kill,stop", help="comma list of: rm, kill, stop")
    ap.add_argument("--fault-rate", type=float, default=0.2, help="chance of a fault per round")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    client = docker.from_env()
    name = f"i13soak{uuid.uuid4().hex[:6]}"
    root = Path(tempfile.mkdtemp(prefix="i13soak-"))
    services = ["alpha", "beta"]
    cfg = []
    for svc in services:
        (root / svc / "site" / "sub").mkdir(parents=True)
        (root / svc / "conf").mkdir()
        (root / svc / "conf" / "message").write_text("m\n")
        (root / svc / "Dockerfile").write_text(HTTPD_DOCKERFILE)
        (root / svc / "README.md").write_text("a build input of the image\n")
        (root / svc / "site" / "index.html").write_text("v1\n")
        (root / svc / "site" / "sub" / "a.txt").write_text("a\n")
        cfg.append(SERVICE.format(svc=svc, name=name, port=free_port()))
    (root / "devloop.yaml").write_text(CONFIG.format(name=name, services="".join(cfg)))
    counts = {
        "edits": 0,
        "faults": 0,
        "rounds": 0,
        "compared": 0,
        "lost": 0,
        "stale": 0,
        "extra": 0,
    }
    faults = [f for f in args.faults.split(",") if f]
    dev = DevProcess(root)
    started = time.monotonic()
    try:
        for svc in services:
            dev.wait_event("ready", service=svc, timeout=300)
        while time.monotonic() - started < args.minutes * 60:
            for _ in range(rng.randint(1, 30)):
                mutate(rng, root / rng.choice(services) / "site", counts)
                time.sleep(rng.random() * 0.05)
            if faults and rng.random() < args.fault_rate:
                svc = rng.choice(services)
                label = [f"app.kubernetes.io/part-of={name}", f"devloop.dev/service={svc}"]
                for c in client.containers.list(filters={"label": label}):
                    fault = rng.choice(faults)
                    if fault == "kill":
                        c.kill()  # Exited (137): the engine's restart policy leaves it so
                    elif fault == "stop":
                        c.stop(timeout=2)
                    else:
                        c.remove(force=True)
                    counts["faults"] += 1
                    counts[fault] = counts.get(fault, 0) + 1
            time.sleep(8)  # the quiet period
            # a container that was stopped comes back after a backoff (up to 15 s)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(
                container_tree(client, name, svc) is None for svc in services
            ):
                time.sleep(0.5)
            counts["rounds"] += 1
            for svc in services:
                want = local_tree(root / svc / "site")
                have = container_tree(client, name, svc) or {}
                counts["compared"] += len(want)
                lost = [p for p in want if p not in have]
                stale = [p for p in want if p in have and have[p] != want[p]]
                # deleted locally, still in the container (the image's CMD writes two files)
                extra = [p for p in have if p not in want and p not in WRITTEN_BY_CMD]
                counts["lost"] += len(lost)
                counts["stale"] += len(stale)
                counts["extra"] += len(extra)
                if lost or stale or extra:
                    print(
                        f"round {counts['rounds']} {svc}: lost {lost[:5]} stale {stale[:5]} "
                        f"extra {extra[:5]}",
                        flush=True,
                    )
    finally:
        code = dev.interrupt(120)
        shutil.rmtree(root, ignore_errors=True)
    minutes = (time.monotonic() - started) / 60
    print(
        f"soak {minutes:.1f} min, devloop exit {code}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    return 1 if counts["lost"] or counts["stale"] or counts["extra"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
