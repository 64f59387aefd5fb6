"""The test Kubernetes API server, end to end through the official `kubernetes` client only."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import docker
import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward, stream

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi

pytestmark = pytest.mark.docker

IMAGE = "devloop/busybox:latest"
HTTPD = [
    "sh",
    "-c",
    'mkdir -p /www && echo "hello $GREETING" > /www/index.html && exec httpd -f -p 8080 -h /www',
]
MANAGER = "devloop"


def api_client(kube_api: KubeApi) -> client.ApiClient:
    return config.new_client_from_config(str(kube_api.kubeconfig), context=kube_api.context)


@pytest.fixture
def api(kube_api: KubeApi) -> Iterator[client.ApiClient]:
    """A client configured from nothing but the kubeconfig, as devloop will be."""
    with api_client(kube_api) as api:
        yield api


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` and the last value."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; last saw {last!r}")


def web_manifests(ns: str, greeting: str) -> list[dict[str, Any]]:
    container = {
        "name": "web",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": HTTPD,
        "env": [
            {
                "name": "GREETING",
                "valueFrom": {"configMapKeyRef": {"name": "web", "key": "greeting"}},
            },
            {"name": "VERSION", "value": greeting},
        ],
        "ports": [{"containerPort": 8080, "name": "http"}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web", "namespace": ns},
            "data": {"greeting": greeting},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": ns,
                "labels": {"app.kubernetes.io/part-of": "shop"},
            },
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [container]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080}]},
        },
    ]


def apply_all(dyn: dynamic.DynamicClient, manifests: list[dict[str, Any]]) -> list[Any]:
    applied = []
    for m in manifests:
        resource = dyn.resources.get(api_version=m["apiVersion"], kind=m["kind"])
        applied.append(
            resource.server_side_apply(body=m, field_manager=MANAGER, force_conflicts=True)
        )
    return applied


def ready_pods(core: client.CoreV1Api, ns: str, selector: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(ns, label_selector=selector).items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and p.status.conditions
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
    ]


def close_ws(resp: Any) -> None:
    """Close an exec stream for good: websocket-client's close() skips the socket when the server
    closed first (as it does at the end of every exec), which leaks it."""
    resp.close()
    resp.sock.shutdown()


def close_pf(pf: Any) -> None:
    """Same for port-forward: once the server has closed the stream, shut its socket ourselves."""
    pf.close()
    wait_for("the port-forward to disconnect", lambda: not pf.connected, 10)
    pf.websocket.shutdown()


def exec_output(core: client.CoreV1Api, ns: str, pod: str, argv: list[str]) -> tuple[str, int]:
    """(stdout+stderr, exit code). The client's preloading mode never closes its socket, so don't
    use it."""
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        ns,
        command=argv,
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
        _preload_content=False,
    )
    try:
        resp.run_forever(timeout=30)
        code = resp.returncode  # before read_all(), which drops the error channel too
        return resp.read_all(), code
    finally:
        close_ws(resp)


def container_status(core: client.CoreV1Api, ns: str, name: str) -> client.V1ContainerStatus | None:
    statuses = core.read_namespaced_pod(name, ns).status.container_statuses
    return statuses[0] if statuses else None


@pytest.fixture(scope="module")
def web(kube_api: KubeApi) -> Iterator[tuple[str, str]]:
    """A ready busybox httpd Deployment behind a Service: (namespace, pod name)."""
    ns = f"web-{int(time.time() * 1000) % 100000}"
    with api_client(kube_api) as api:
        apply_all(dynamic.DynamicClient(api), web_manifests(ns, "one"))
        core = client.CoreV1Api(api)
        pods = wait_for("the web pod to be ready", lambda: ready_pods(core, ns, "app=web"))
    yield ns, pods[0].metadata.name
    kube_api.server.delete_namespace(ns)


def test_discovery_through_the_dynamic_client(api: client.ApiClient, kube_api: KubeApi) -> None:
    dyn = dynamic.DynamicClient(api)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    namespaces = dyn.resources.get(api_version="v1", kind="Namespace")
    assert (deployments.name, deployments.namespaced, deployments.group) == (
        "deployments",
        True,
        "apps",
    )
    assert "patch" in deployments.verbs and "watch" in pods.verbs
    assert namespaces.namespaced is False
    assert dyn.version["kubernetes"]["gitVersion"].startswith("v1.")
    names = {n.metadata.name for n in namespaces.get().items}
    assert {"default", "kube-system"} <= names


def test_errors_are_status_objects(
    api: client.ApiClient, kube_api: KubeApi, kube_namespace: str
) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", "default")
    body = json.loads(missing.value.body)
    assert (missing.value.status, body["kind"], body["reason"]) == (404, "Status", "NotFound")
    assert body["message"] == 'configmaps "nope" not found' and body["details"]["name"] == "nope"

    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"k": "v"})
    with pytest.raises(ApiException) as no_namespace:
        core.create_namespaced_config_map(kube_namespace, cm)
    assert no_namespace.value.status == 404
    assert (
        json.loads(no_namespace.value.body)["message"] == f'namespaces "{kube_namespace}" not found'
    )

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=kube_namespace)))
    created = core.create_namespaced_config_map(kube_namespace, cm)
    assert (
        created.metadata.uid
        and created.metadata.resource_version
        and created.metadata.creation_timestamp
    )
    with pytest.raises(ApiException) as twice:
        core.create_namespaced_config_map(kube_namespace, cm)
    assert (twice.value.status, json.loads(twice.value.body)["reason"]) == (409, "AlreadyExists")


def test_apply_rollout_and_label_watch(
    api: client.ApiClient, kube_api: KubeApi, kube_namespace: str
) -> None:
    ns = kube_namespace
    dyn, core, apps = dynamic.DynamicClient(api), client.CoreV1Api(api), client.AppsV1Api(api)
    applied = apply_all(dyn, web_manifests(ns, "one"))
    assert applied[2].metadata.generation == 1
    first = wait_for("the first pod", lambda: ready_pods(core, ns, "app=web"))[0]
    rs_name = first.metadata.owner_references[0].name
    assert (
        first.metadata.name.startswith(rs_name + "-")
        and len(first.metadata.name) == len(rs_name) + 6
    )
    assert first.metadata.labels["pod-template-hash"] == rs_name.removeprefix("web-")
    assert (
        apps.read_namespaced_replica_set(rs_name, ns).metadata.owner_references[0].kind
        == "Deployment"
    )

    events: list[tuple[str, str]] = []
    w = watch.Watch()
    rv = core.list_namespaced_pod(ns, label_selector="app=web").metadata.resource_version
    # Changing the template rolls out a new ReplicaSet; the old pod goes once the new one is ready.
    changed = apply_all(dyn, web_manifests(ns, "two"))[2]
    assert changed.metadata.generation == 2
    for event in w.stream(
        core.list_namespaced_pod,
        ns,
        label_selector="app=web",
        resource_version=rv,
        timeout_seconds=60,
    ):
        events.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED" and event["object"].metadata.name == first.metadata.name:
            w.stop()
    new = wait_for("the rolled-out pod", lambda: ready_pods(core, ns, "app=web"))
    assert [p.metadata.name for p in new] != [first.metadata.name]
    assert ("ADDED", new[0].metadata.name) in events
    dep = wait_for(
        "the rollout to complete",
        lambda: (
            (d := apps.read_namespaced_deployment("web", ns)).status.updated_replicas == 1
            and d.status.replicas == 1
            and d.status.available_replicas == 1
            and d
        ),
    )
    assert dep.status.observed_generation == 2
    progressing = next(c for c in dep.status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("True", "NewReplicaSetAvailable")
    out = exec_output(core, ns, new[0].metadata.name, ["wget", "-qO-", "http://web:8080/"])
    assert out == ("hello two\n", 0)  # in-pod DNS of the service name, and the new env


def test_exec_one_shot_and_exit_codes(
    api: client.ApiClient, kube_api: KubeApi, web: tuple[str, str]
) -> None:
    ns, pod = web
    core = client.CoreV1Api(api)
    out, code = exec_output(core, ns, pod, ["sh", "-c", "echo out; echo err >&2"])
    assert (sorted(out.splitlines()), code) == (["err", "out"], 0)
    assert exec_output(core, ns, pod, ["sh", "-c", "echo bye; exit 3"]) == ("bye\n", 3)


def test_exec_long_lived_stdin(
    api: client.ApiClient, kube_api: KubeApi, web: tuple[str, str]
) -> None:
    ns, pod = web
    core = client.CoreV1Api(api)
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        ns,
        command=["sh", "-c", "while read line; do echo got:$line; done"],
        stdout=True,
        stderr=True,
        stdin=True,
        tty=False,
        _preload_content=False,
    )
    for i in range(5):
        resp.write_stdin(f"hello {i}\n")
        assert resp.readline_stdout(timeout=10) == f"got:hello {i}"
    resp.close_channel(0)  # EOF on stdin ends the loop
    resp.run_forever(timeout=30)
    close_ws(resp)
    assert resp.returncode == 0


def test_port_forward_to_httpd(
    api: client.ApiClient, kube_api: KubeApi, web: tuple[str, str]
) -> None:
    ns, pod = web
    core = client.CoreV1Api(api)
    pf = portforward(core.connect_get_namespaced_pod_portforward, pod, ns, ports="8080")
    sock = pf.socket(8080)
    sock.settimeout(10)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
    reply = b""
    while chunk := sock.recv(4096):
        reply += chunk
    sock.close()
    close_pf(pf)
    assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"hello one\n")
    assert pf.error(8080) is None

    refused = portforward(core.connect_get_namespaced_pod_portforward, pod, ns, ports="9999")
    sock = refused.socket(9999)
    sock.settimeout(10)
    assert sock.recv(10) == b""
    sock.close()
    close_pf(refused)
    assert "connection refused" in refused.error(9999)


def make_pod(core: client.CoreV1Api, ns: str, name: str, **container: Any) -> None:
    spec = {"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent"} | container
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"test": name}},
        "spec": {"containers": [spec], "terminationGracePeriodSeconds": 1},
    }
    core.create_namespaced_pod(ns, body)


@pytest.fixture
def ns(api: client.ApiClient, kube_namespace: str) -> str:
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=kube_namespace))
    )
    return kube_namespace


def test_logs_follow_tail_and_previous(api: client.ApiClient, kube_api: KubeApi, ns: str) -> None:
    core = client.CoreV1Api(api)
    make_pod(
        core,
        ns,
        "talker",
        command=["sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"],
    )
    wait_for(
        "talker to run", lambda: core.read_namespaced_pod("talker", ns).status.phase == "Running"
    )
    lines = []
    w = watch.Watch()
    for line in w.stream(core.read_namespaced_pod_log, "talker", ns):
        lines.append(line)
        if len(lines) == 5:
            w.stop()
    assert lines == [f"line {i}" for i in range(5)]
    tail = core.read_namespaced_pod_log("talker", ns, tail_lines=1, timestamps=True)
    assert tail.count("\n") == 1 and tail.split(" ", 1)[1].startswith("line ")
    with pytest.raises(ApiException) as no_previous:
        core.read_namespaced_pod_log("talker", ns, previous=True)
    assert no_previous.value.status == 400


def test_crash_loop_back_off(api: client.ApiClient, kube_api: KubeApi, ns: str) -> None:
    core = client.CoreV1Api(api)
    make_pod(
        core,
        ns,
        "crasher",
        command=["sh", "-c", "echo booting; echo 'config missing' >&2; exit 3"],
        terminationMessagePolicy="FallbackToLogsOnError",
    )

    def looping() -> client.V1ContainerStatus | None:
        s = container_status(core, ns, "crasher")
        waiting = s and s.state.waiting
        return (
            s if waiting and waiting.reason == "CrashLoopBackOff" and s.restart_count >= 2 else None
        )

    status = wait_for("CrashLoopBackOff", looping)
    assert "back-off" in status.state.waiting.message and "crasher" in status.state.waiting.message
    last = status.last_state.terminated
    assert (last.exit_code, last.reason) == (3, "Error")
    assert "config missing" in last.message
    assert core.read_namespaced_pod("crasher", ns).status.phase == "Running"
    assert "booting" in core.read_namespaced_pod_log("crasher", ns, previous=True)
    reasons = {e.reason for e in core.list_namespaced_event(ns).items}
    assert {"Scheduled", "Created", "Started", "BackOff"} <= reasons


def test_unpullable_image_and_unschedulable_pod(
    api: client.ApiClient, kube_api: KubeApi, ns: str
) -> None:
    core = client.CoreV1Api(api)
    image = "127.0.0.1:5000/devloop-kubeapi/missing:1"
    make_pod(core, ns, "ghost", image=image)
    seen: set[str] = set()

    def backing_off() -> bool:
        s = container_status(core, ns, "ghost")
        if s and s.state.waiting:
            seen.add(s.state.waiting.reason)
            assert image in (s.state.waiting.message or image)
        return "ImagePullBackOff" in seen

    wait_for("ImagePullBackOff", backing_off)
    assert "ErrImagePull" in seen or any(
        e.reason == "Failed" and "ErrImagePull" in e.message
        for e in core.list_namespaced_event(ns).items
    )
    assert core.read_namespaced_pod("ghost", ns).status.phase == "Pending"

    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "picky"},
        "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "main", "image": IMAGE}]},
    }
    core.create_namespaced_pod(ns, body)
    cond = wait_for(
        "PodScheduled=False",
        lambda: (c := core.read_namespaced_pod("picky", ns).status.conditions) and c[0],
    )
    assert (cond.type, cond.status, cond.reason) == ("PodScheduled", "False", "Unschedulable")
    assert "didn't match Pod's node affinity/selector" in cond.message


def test_patches_conflicts_and_collection_delete(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        core.create_namespaced_config_map(
            ns, {"metadata": {"name": name, "labels": {"tier": tier}}, "data": {"k": "v"}}
        )
    patched = core.patch_namespaced_config_map("a", ns, {"data": {"k": None, "n": "1"}})
    assert patched.data == {"n": "1"}
    stale = core.read_namespaced_config_map("b", ns)
    core.patch_namespaced_config_map("b", ns, {"data": {"k": "newer"}})
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("b", ns, stale)
    assert (conflict.value.status, json.loads(conflict.value.body)["reason"]) == (409, "Conflict")
    core.delete_collection_namespaced_config_map(ns, label_selector="tier=web")
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["c"]


def test_failing_readiness_exceeds_the_progress_deadline(api: client.ApiClient, ns: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    container = {
        "name": "main",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sleep", "600"],
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    }
    apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "stuck"},
            "spec": {
                "progressDeadlineSeconds": 2,
                "selector": {"matchLabels": {"app": "stuck"}},
                "template": {
                    "metadata": {"labels": {"app": "stuck"}},
                    "spec": {"containers": [container]},
                },
            },
        },
    )

    def stalled() -> client.V1DeploymentCondition | None:
        conditions = apps.read_namespaced_deployment("stuck", ns).status.conditions or []
        return next(
            (c for c in conditions if c.type == "Progressing" and c.status == "False"), None
        )

    cond = wait_for("ProgressDeadlineExceeded", stalled, 30)
    assert cond.reason == "ProgressDeadlineExceeded" and "has timed out progressing" in cond.message
    status = apps.read_namespaced_deployment("stuck", ns).status
    assert (status.unavailable_replicas, status.ready_replicas) == (1, None)
    pod = core.list_namespaced_pod(ns, label_selector="app=stuck").items[0]
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason, ready.message) == (
        "False",
        "ContainersNotReady",
        "containers with unready status: [main]",
    )
    unhealthy = [
        e.message for e in core.list_namespaced_event(ns, field_selector="reason=Unhealthy").items
    ]
    assert any(
        "Readiness probe failed: dial tcp" in m and "connection refused" in m for m in unhealthy
    )


def test_delete_cascades_to_pods_and_containers(
    api: client.ApiClient, kube_api: KubeApi, kube_namespace: str
) -> None:
    ns = kube_namespace
    dyn, core, apps = dynamic.DynamicClient(api), client.CoreV1Api(api), client.AppsV1Api(api)
    apply_all(dyn, web_manifests(ns, "one")[:3])
    pod = wait_for("a pod", lambda: ready_pods(core, ns, "app=web"))[0]
    core.delete_namespaced_pod(pod.metadata.name, ns)
    replaced = wait_for(
        "a replacement pod",
        lambda: [
            p for p in ready_pods(core, ns, "app=web") if p.metadata.name != pod.metadata.name
        ],
    )
    assert replaced[0].metadata.owner_references[0].name == pod.metadata.owner_references[0].name
    apps.delete_namespaced_deployment("web", ns)
    wait_for(
        "pods and replica sets to go",
        lambda: (
            not core.list_namespaced_pod(ns).items
            and not apps.list_namespaced_replica_set(ns).items
        ),
    )
    labels = {"label": [f"devloop.kubeapi.namespace={ns}"]}
    wait_for(
        "the containers to go",
        lambda: not docker.from_env().containers.list(all=True, filters=labels),
    )
    core.delete_namespace(ns)
    wait_for(
        "the namespace to go",
        lambda: ns not in {n.metadata.name for n in core.list_namespace().items},
    )
