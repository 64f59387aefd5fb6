"""The Kubernetes target, through the test API server (tests/kubeapi): save → container, and
transfer.

    /work/venv/bin/python bench/bench_kube.py [--edits N] [--runs N]

Starts the test API server the way its pytest fixture does, runs the real `devloop dev`
against it (a kubeconfig naming it) and repeats bench_e2e's series, then times the sync
channel through the API server's exec WebSocket against one `tar` exec per batch over
the same WebSocket (what Skaffold and Tilt do), on the same pod and file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
from bench_channel import Apply, payload_maker, time_methods
from bench_e2e import Series
from bench_e2e import measure as e2e_measure
from bench_e2e import table as e2e_table
from common import Stats, Table, import_paths, ms
from devrun import MULTI, BenchProject, DevRun

import_paths()
from devloop import config  # noqa: E402
from devloop.runtime.base import Instance  # noqa: E402
from devloop.runtime.kubernetes.pods import split_id  # noqa: E402
from devloop.runtime.kubernetes.runtime import KubernetesRuntime  # noqa: E402
from devloop.runtime.kubernetes.stream import KubeTransport  # noqa: E402
from devloop.sync import payload as sync  # noqa: E402
from devloop.sync.channel import Channel  # noqa: E402
from tests.kubeapi.app import KubeApiServer  # noqa: E402
from tests.kubeapi.settings import Settings  # noqa: E402
from tests.runtime.kubernetes.scenarios import Target, cleanup_images, write_project  # noqa: E402

CONTEXT = "devloop-kubeapi"  # not kind-*: that would make the builder run `kind load`
TAR_ARGV = ["tar", "-x", "-m", "-o", "-f", "-", "-C", "/"]
CAVEAT = (
    "CAVEAT: tests/kubeapi is a test API server, not a real kubelet: its pods are Docker "
    "containers on this machine and an exec goes client → API server WebSocket → docker exec, "
    "with no kubelet, CRI or network hop. Indicative of devloop's own overhead only."
)


@contextlib.contextmanager
def kube_target() -> Iterator[Target]:
    """A running test API server, a kubeconfig for it, and a namespace deleted afterwards."""
    server = KubeApiServer(settings=Settings.fast())
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="devloop-bench-kube-"))
    namespace = f"devloop-bench-{uuid.uuid4().hex[:6]}"
    try:
        kubeconfig = server.write_kubeconfig(tmp / "kubeconfig", CONTEXT)
        yield Target(kubeconfig, CONTEXT, namespace)
    finally:
        with contextlib.suppress(Exception):  # best effort: the server stops either way
            server.delete_namespace(namespace)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def kube_project(client: docker.DockerClient, target: Target) -> Iterator[BenchProject]:
    """The Kubernetes scenarios' httpd project, plus the files of the multi-file series."""
    name = f"benchk8s{uuid.uuid4().hex[:6]}"
    root = Path(tempfile.mkdtemp(prefix="devloop-bench-kproj-"))
    try:
        port = write_project(root, target, name)
        proj = BenchProject(root, name, port)
        (proj.context / "site" / "multi").mkdir()
        for rel in proj.multi()[:MULTI]:
            (proj.context / rel).write_text("v0\n")
        yield proj
    finally:
        cleanup_images(client, name)
        shutil.rmtree(root, ignore_errors=True)


def dev_run(client: docker.DockerClient, target: Target, proj: BenchProject) -> DevRun:
    selector = [
        f"devloop.kubeapi.namespace={target.namespace}",
        "devloop.kubeapi.container=web",
    ]
    return DevRun(client, proj, env=target.env, selector=selector)


def transfer(
    client: docker.DockerClient, target: Target, proj: BenchProject, runs: int
) -> dict[str, list[float]]:
    """The channel vs one tar exec per batch, both through the API server, on the dev loop's pod."""
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(target.kubeconfig)
    mirror = Path(tempfile.mkdtemp(prefix="devloop-bench-kmirror-"))
    try:
        project = config.load(proj.root)
        runtime = KubernetesRuntime(project, session=f"bench-{uuid.uuid4().hex[:6]}", dev=False,
                                    context_flag=None, docker=client)  # fmt: skip
        [inst] = runtime.instances("web")
        svc = project.services["web"]
        (mirror / "site").mkdir()
        make = payload_maker(
            dataclasses.replace(svc, context=mirror), svc.sync[0], ["site/index.html"]
        )
        channel = Channel(lambda argv: runtime.open_stream(inst, argv), "bench")
        methods: dict[str, Apply] = {
            "channel": channel.apply,
            "exec tar": lambda p: _tar(runtime, inst, p),
        }
        try:
            return time_methods(methods, make, runs)
        finally:
            channel.close()
    finally:
        shutil.rmtree(mirror, ignore_errors=True)
        if old is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = old


def _tar(runtime: KubernetesRuntime, inst: Instance, payload: sync.Payload) -> None:
    namespace, pod, container = split_id(inst)
    io = KubeTransport(runtime.cluster.rest, namespace, pod, container, TAR_ARGV)
    try:
        io.send(payload.archive)
        io.close_stdin()
        _, err = io.read_all(60)
        code = io.exit_code()
    finally:
        io.close()
    if code != 0:
        raise RuntimeError(f"tar in {inst.name} exited {code}: {err!r}")


def transfer_table(times: dict[str, list[float]]) -> Table:
    t = Table(
        "7b. Transfer alone, Kubernetes (test API server): one file, same pod, interleaved",
        ["method", "p50 ms", "p95 ms", "max ms", "n", "p50 ÷ channel p50"],
    )
    base = Stats.of(times["channel"]).p50
    for method, values in times.items():
        s = Stats.of(values)
        t.add(method, ms(s.p50), ms(s.p95), ms(s.max), s.n, f"{s.p50 / base:.1f}x")
    t.notes.append(CAVEAT)
    return t


def run(edits: int, runs: int) -> list[Table]:
    """Both Kubernetes tables: save → container (7a) and transfer alone (7b)."""
    client = docker.from_env(timeout=300)
    try:
        with (
            kube_target() as target,
            kube_project(client, target) as proj,
            dev_run(client, target, proj) as dev,
        ):
            series: list[Series] = e2e_measure(dev, edits)
            times = transfer(client, target, proj, runs)
    finally:
        client.close()
    first = e2e_table(series, "Kubernetes via the test API server")
    first.title = "7a. " + first.title.removeprefix("1. ")
    first.notes.append(CAVEAT)
    return [first, transfer_table(times)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    for table in run(args.edits, args.runs):
        print(table.text())


if __name__ == "__main__":
    main()
