"""The Kubernetes runtime's parts: the local-context check, the supervisor under $(VAR) expansion,
binary data over the exec stream, and a rollout wait that a new edit interrupts."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import pytest

from devloop import config
from devloop.errors import DeployError
from devloop.loop import steer
from devloop.model.events import Crashed, Event
from devloop.model.manifest import ANNOTATION_RESTARTED
from devloop.render.templates import render
from devloop.runtime import supervisor
from devloop.runtime.docker.podenv import expand
from devloop.runtime.kubernetes.client import check_allowed, is_local
from devloop.runtime.kubernetes.pods import container_status, instance, service_pods
from devloop.runtime.kubernetes.runtime import KubernetesRuntime
from devloop.runtime.kubernetes.supervise import _escape

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi


@pytest.mark.parametrize(
    ("context", "server", "local"),
    [
        ("kind-dev", "https://10.1.2.3:6443", True),
        ("k3d-x", "https://0.0.0.0:6443", True),
        ("minikube", "https://192.168.49.2:8443", True),
        ("docker-desktop", "https://kubernetes.docker.internal:6443", True),
        ("rancher-desktop", "https://10.0.0.1", True),
        ("anything", "https://127.0.0.1:6443", True),
        ("anything", "http://localhost:8080", True),
        ("anything", "https://[::1]:6443", True),
        ("prod", "https://k8s.example.com", False),
        ("kindly-prod", "https://10.1.2.3:6443", False),
        ("gke_project_zone_cluster", "https://34.1.2.3", False),
    ],
)
def test_which_contexts_look_local(context: str, server: str, local: bool) -> None:
    assert is_local(context, server) is local


def test_a_remote_context_needs_permission() -> None:
    with pytest.raises(
        DeployError, match=r"refusing to deploy to kube context 'prod' \(API server https://k8s"
    ):
        check_allowed("prod", "https://k8s.example.com", (), None)
    check_allowed("prod", "https://k8s.example.com", ("staging", "prod"), None)
    check_allowed("prod-eu", "https://k8s.example.com", ("prod-*",), None)
    check_allowed("prod", "https://k8s.example.com", (), "prod")
    with pytest.raises(DeployError, match="--context prod"):
        check_allowed("prod", "https://k8s.example.com", (), "other")


def test_supervisor_survives_kubernetes_expansion() -> None:
    # Kubernetes expands $(NAME) in command and args: the script must come through unchanged
    words = {
        w: "EXPANDED"
        for w in [
            "state",
            "gen",
            "child",
            "restart",
            "stopping",
            "tree",
            "alive",
            "line",
            "f",
            "i",
            "all",
            "todo",
            "next",
        ]
    }
    argv = supervisor.wrap(["httpd", "-f"])
    assert [expand(a, words) for a in argv] == argv


def test_image_commands_are_escaped_for_expansion() -> None:
    argv = ["sh", "-c", "echo $(HOME) $$ $((1 + 2)) $PATH"]
    assert [expand(a, {"HOME": "/nope"}) for a in _escape(argv)] == argv


# -- against the test API server ------------------------------------------------------------

CONTEXT = "devloop-kubeapi"
DOCKERFILE = 'FROM devloop/busybox:latest\nCMD ["sh", "-c", "exec sleep 3600"]\n'
TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: box}
spec:
  selector: {matchLabels: {app: box}}
  template:
    metadata: {labels: {app: box}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: box
          image: {{ image | quote }}
          readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1}
"""


@pytest.fixture
def runtime(
    kube_api: KubeApi,
    kube_namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_client: docker.DockerClient,
    base_image: str,
) -> Iterator[KubernetesRuntime]:
    name = f"kr{uuid.uuid4().hex[:8]}"
    kubeconfig = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", CONTEXT)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    (tmp_path / "box").mkdir()
    (tmp_path / "box/Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "box.yaml.j2").write_text(TEMPLATE)
    (tmp_path / "devloop.yaml").write_text(
        f"name: {name}\nkubernetes: {{context: {CONTEXT}, namespace: {kube_namespace}}}\n"
        f"services:\n  box:\n    image: devloop-test-k8s/{name}\n    context: box\n    manifests: "
        f"[box.yaml.j2]\n"
    )
    project = config.load(tmp_path, ())
    image = docker_client.images.build(
        path=str(tmp_path / "box"),
        tag=f"devloop-test-k8s/{name}:t1",
        labels={"devloop.test": "kubernetes"},
        rm=True,
    )[0]
    rt = KubernetesRuntime(project, session="t", dev=True, context_flag=None, docker=docker_client)
    rt.deploy(render(project, {"box": f"devloop-test-k8s/{name}:t1"}), ["box"])
    try:
        yield rt
    finally:
        rt.teardown()
        kube_api.server.delete_namespace(kube_namespace)
        docker_client.images.remove(image.id, force=True)


def _ready(rt: KubernetesRuntime) -> None:
    deadline = time.monotonic() + 60
    while True:
        pods = [
            instance("box", p)
            for p in service_pods(rt.cluster.rest, rt.cluster.namespace, rt.project.name, "box")
            if container_status(p, "box").get("state", {}).get("running")
        ]
        if pods:
            code, _ = rt.exec(pods[0], ["touch", "/tmp/ready"])
            assert code == 0
            rt.wait_ready(["box"], 60)
            return
        assert time.monotonic() < deadline, "no pod started"
        time.sleep(0.2)


@pytest.mark.docker
def test_wait_ready_returns_promptly_when_cancelled(runtime: KubernetesRuntime) -> None:
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    start = time.monotonic()
    runtime.wait_ready(["box"], 60, cancel)  # never ready: nobody touched /tmp/ready
    assert time.monotonic() - start < 5


@pytest.mark.docker
def test_exec_stream_carries_every_byte_value(runtime: KubernetesRuntime) -> None:
    _ready(runtime)
    [box] = runtime.instances("box")
    data = bytes(range(256)) * 4096 + b"\r\n\x00\n"  # 1 MiB and then some, every byte value
    stream = runtime.open_stream(box, ["sh", "-c", f"head -c {len(data)} | md5sum; echo done"])
    try:
        stream.send(data)
        assert stream.readline(30).split()[0].decode() == hashlib.md5(data).hexdigest()
        assert stream.readline(30) == b"done"
    finally:
        stream.close()
    code, out = runtime.exec(box, ["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (code, sorted(out.split())) == (7, [b"err", b"out"])


@pytest.mark.docker
def test_restart_process_keeps_the_pod_and_bumps_nothing_else(runtime: KubernetesRuntime) -> None:
    _ready(runtime)
    [before] = runtime.instances("box")
    pid = runtime.exec(before, ["cat", supervisor.STATE])[1]
    runtime.restart_process(before)
    [after] = runtime.instances("box")
    assert after.id == before.id and after.generation == before.generation
    assert runtime.exec(after, ["cat", supervisor.STATE])[1] != pid


@pytest.mark.docker
def test_a_container_that_exits_is_reported_crashed_with_its_restart_count(
    runtime: KubernetesRuntime,
) -> None:
    _ready(runtime)
    [box] = runtime.instances("box")
    stop = threading.Event()
    crashed: list[Event] = []
    runtime.watch_crashes(crashed.append, stop)
    try:
        runtime.exec(box, ["sh", "-c", "kill 1"])  # the supervisor ends: the container exits
        deadline = time.monotonic() + 60
        while not crashed:
            assert time.monotonic() < deadline, "no crashed event"
            time.sleep(0.2)
    finally:
        stop.set()
    [crash] = crashed
    assert isinstance(crash, Crashed)
    assert (crash.service, crash.container, crash.restarts) == ("box", box.name, 1)


@pytest.mark.docker
def test_a_restart_stamp_rolls_out_new_pods_with_the_same_image(
    runtime: KubernetesRuntime,
) -> None:
    """What `r` does on Kubernetes when the tag is unchanged (kubectl rollout restart's way)."""
    _ready(runtime)
    [before] = runtime.instances("box")
    ref = f"devloop-test-k8s/{runtime.project.name}:t1"
    stamped = steer.stamped(render(runtime.project, {"box": ref}), {"box": "1765000000"})
    runtime.deploy(stamped, ["box"])

    def new_pods() -> list[str]:
        return [
            p["metadata"]["name"]
            for p in service_pods(
                runtime.cluster.rest, runtime.cluster.namespace, runtime.project.name, "box"
            )
            if f"/{p['metadata']['name']}/" not in before.id + "/"
            and (p["metadata"].get("annotations") or {}).get(ANNOTATION_RESTARTED) == "1765000000"
        ]

    deadline = time.monotonic() + 60
    while not new_pods():
        assert time.monotonic() < deadline, "no new pod carries the stamp"
        time.sleep(0.2)
