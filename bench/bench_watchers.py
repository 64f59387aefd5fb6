"""In-container watchers and bursts: does the dev server serve the last save?

    .venv/bin/python bench/bench_watchers.py [--project vite] [--bursts 20]

Runs `devloop dev` on tests/projects/<project> (dependencies vendored as the tests do),
then, `--bursts` times: ten saves of one file 2 ms apart while a client requests the
page in a loop (as an open browser tab does), and counts the bursts after which the
server still served an older save 2 s later. Also counts the batches (`changes` events)
each burst became. To measure another devloop (an older commit), put its checkout first
on PYTHONPATH: `dev` runs as `python -m devloop`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import yaml
from common import ROOT, import_paths

import_paths()
from tests.devproc import DevProcess, free_port, http_get  # noqa: E402
from tests.projects.conftest import fetch_npm, fetch_pip  # noqa: E402

TARGETS: dict[str, tuple[str, int, str, str]] = {
    # project: (file, container port, URL path, text in the file to vary)
    "vite": ("src/main.js", 5173, "/src/main.js", "hello from vite v1"),
    "nodemon": ("src/message.js", 3000, "/", "hello from nodemon v1"),
    "flask": ("app/message.py", 5000, "/", "hello from flask v1"),
    "uvicorn": ("app/message.py", 8000, "/", "hello from uvicorn v1"),
}


def prepare(client: docker.DockerClient, project: str, tmp: Path) -> tuple[Path, str, int]:
    src = ROOT / "tests" / "projects" / project
    directory = tmp / project
    shutil.copytree(src, directory)
    deps = tmp / "deps"
    deps.mkdir()
    if (src / "package.json").is_file():
        fetch_npm(client, src, deps)
        shutil.copytree(deps / "npm-cache", directory / "npm-cache")
        shutil.copy(deps / "package-lock.json", directory / "package-lock.json")
    else:
        fetch_pip(client, src, deps)
        shutil.copytree(deps / "wheels", directory / "wheels")
    init = subprocess.run(
        [sys.executable, "-m", "devloop", "-C", str(directory), "init"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    raw: dict[str, Any] = yaml.safe_load((directory / "devloop.yaml").read_text())
    name = f"bench-watch-{uuid.uuid4().hex[:6]}"
    raw["name"] = name
    port = free_port()
    for svc in raw["services"].values():
        svc["image"] = f"{name}/{svc['image'].split('/')[-1]}"
        svc["ports"] = [f"{port}:{TARGETS[project][1]}"]
    (directory / "devloop.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return directory, name, port


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--project", default="vite", choices=sorted(TARGETS))
    ap.add_argument("--bursts", type=int, default=20)
    args = ap.parse_args()
    client = docker.from_env()
    file, _, path, text = TARGETS[args.project]
    tmp = Path(tempfile.mkdtemp(prefix="devloop-bench-watch-"))
    directory, name, port = prepare(client, args.project, tmp)
    url = f"http://127.0.0.1:{port}{path}"
    dev = DevProcess(directory)
    stale, batches = 0, []
    try:
        dev.wait_event("ready", timeout=300)
        target = directory / file
        original = target.read_text()
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                http_get(url, timeout=2)

        for b in range(args.bursts):
            mark = dev.mark()
            poller = threading.Thread(target=poll, daemon=True)
            stop.clear()
            poller.start()
            for i in range(10):
                target.write_text(original.replace(text, f"burst {b}.{i} end"))
                time.sleep(0.002)
            time.sleep(2.0)
            stop.set()
            poller.join()
            body = http_get(url)[1]
            ok = f"burst {b}.9 end" in body
            stale += not ok
            batches.append(sum(1 for e in dev.events[mark:] if e.get("event") == "changes"))
            print(f"burst {b}: {'last save' if ok else 'STALE'}; {batches[-1]} batch(es)")
    finally:
        dev.interrupt()
        label = {"label": f"app.kubernetes.io/part-of={name}"}
        for c in client.containers.list(all=True, filters=label):
            c.remove(force=True)
        for img in client.images.list(name=f"{name}/{args.project}"):
            client.images.remove(img.id, force=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{args.project}: {stale} of {args.bursts} bursts left an older save served; "
        f"batches per burst: median {statistics.median(batches)}, max {max(batches)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
