"""Where the test API server refuses pods as a real cluster does (quota, security, volumes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.runtime.kubernetes.test_kubeapi import exec_output, wait_for

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi

pytestmark = pytest.mark.docker

IMAGE = "devloop/busybox:latest"


@pytest.fixture
def ns(kube_api: KubeApi, kube_namespace: str, docker_client: object) -> Iterator[str]:
    name = f"i14s-{kube_namespace}"[:63].rstrip("-")
    with config.new_client_from_config(str(kube_api.kubeconfig)) as api:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    yield name
    kube_api.server.delete_namespace(name)


@pytest.fixture
def core(kube_api: KubeApi) -> Iterator[Any]:
    with config.new_client_from_config(str(kube_api.kubeconfig)) as api:
        yield client.CoreV1Api(api)


def _deployment(replicas: int, pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec},
        },
    }


def _sleeper(**extra: Any) -> dict[str, Any]:
    return {"name": "web", "image": IMAGE, "command": ["sleep", "3600"], **extra}


def test_quota_rejects_pods_with_replicaset_failure_and_events(
    kube_api: KubeApi, ns: str, core: Any
) -> None:
    core.create_namespaced_resource_quota(
        ns, {"metadata": {"name": "i14s-q"}, "spec": {"hard": {"pods": "1"}}}
    )
    with config.new_client_from_config(str(kube_api.kubeconfig)) as api:
        apps = client.AppsV1Api(api)
        spec = {"terminationGracePeriodSeconds": 0, "containers": [_sleeper()]}
        apps.create_namespaced_deployment(ns, _deployment(2, spec))

        def failure() -> Any:
            for rs in apps.list_namespaced_replica_set(ns).items:
                for c in rs.status.conditions or []:
                    if c.type == "ReplicaFailure":
                        return c
            return None

        condition = wait_for("ReplicaFailure", failure, timeout=30)
    assert condition.status == "True" and condition.reason == "FailedCreate"
    assert "exceeded quota: i14s-q, requested: pods=1, used: pods=1, limited: pods=1" in (
        condition.message
    )
    events = wait_for(
        "FailedCreate event",
        lambda: [e for e in core.list_namespaced_event(ns).items if e.reason == "FailedCreate"],
    )
    assert events[0].involved_object.kind == "ReplicaSet"
    assert events[0].message.startswith('Error creating: pods "web-')
    assert len(core.list_namespaced_pod(ns).items) == 1
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod(ns, {"metadata": {"name": "extra"}, "spec": spec})
    assert caught.value.status == 403 and "exceeded quota: i14s-q" in str(caught.value.body)


def _pod(core: Any, ns: str, name: str, spec: dict[str, Any]) -> None:
    core.create_namespaced_pod(
        ns, {"metadata": {"name": name}, "spec": {"terminationGracePeriodSeconds": 0} | spec}
    )


def _waiting(core: Any, ns: str, name: str) -> Any:
    statuses = core.read_namespaced_pod(name, ns).status.container_statuses or []
    return statuses[0].state.waiting if statuses else None


def test_a_missing_config_map_volume_holds_the_pod_then_mounts(ns: str, core: Any) -> None:
    spec = {
        "containers": [
            _sleeper(
                volumeMounts=[
                    {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
                    {"name": "scratch", "mountPath": "/scratch"},
                ],
                securityContext={"readOnlyRootFilesystem": True},
            )
        ],
        "volumes": [
            {"name": "cfg", "configMap": {"name": "settings"}},
            {"name": "scratch", "emptyDir": {}},
        ],
    }
    _pod(core, ns, "web", spec)
    event = wait_for(
        "FailedMount",
        lambda: [e for e in core.list_namespaced_event(ns).items if e.reason == "FailedMount"],
    )[0]
    assert (
        event.message
        == 'MountVolume.SetUp failed for volume "cfg" : configmap "settings" not found'
    )
    waiting = _waiting(core, ns, "web")
    assert waiting.reason == "ContainerCreating"
    assert core.read_namespaced_pod("web", ns).status.phase == "Pending"
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": "settings"}, "data": {"greeting": "hello"}}
    )
    wait_for("running", lambda: core.read_namespaced_pod("web", ns).status.phase == "Running")
    assert exec_output(core, ns, "web", ["cat", "/etc/cfg/greeting"]) == ("hello", 0)
    assert exec_output(core, ns, "web", ["touch", "/scratch/ok"])[1] == 0
    out, code = exec_output(core, ns, "web", ["touch", "/rootfs-file"])
    assert code != 0 and "Read-only file system" in out


def test_run_as_non_root_on_a_root_image(ns: str, core: Any) -> None:
    _pod(core, ns, "web", {"securityContext": {"runAsNonRoot": True}, "containers": [_sleeper()]})
    waiting = wait_for(
        "CreateContainerConfigError",
        lambda: (w := _waiting(core, ns, "web")) and w.reason == "CreateContainerConfigError" and w,
    )
    assert waiting.message.startswith("container has runAsNonRoot and image will run as root")
    _pod(
        core,
        ns,
        "as-user",
        {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000}, "containers": [_sleeper()]},
    )
    wait_for("running", lambda: core.read_namespaced_pod("as-user", ns).status.phase == "Running")


def test_a_terminating_namespace_refuses_new_content(kube_api: KubeApi, ns: str, core: Any) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "before"}})
    kube_api.server.hold_terminating(ns)
    assert core.read_namespace(ns).status.phase == "Terminating"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "after"}})
    assert caught.value.status == 403
    assert f"unable to create new content in namespace {ns} because it is being terminated" in (
        str(caught.value.body)
    )
    wait_for("the namespace emptied", lambda: not core.list_namespaced_config_map(ns).items)
    assert core.read_namespace(ns).status.phase == "Terminating"  # held
    kube_api.server.release_namespace(ns)

    def gone() -> bool:
        try:
            core.read_namespace(ns)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for("the namespace gone", gone)


def test_init_containers_run_first_and_a_failing_one_holds_the_pod(ns: str, core: Any) -> None:
    shared = [{"name": "work", "mountPath": "/work"}]
    _pod(
        core,
        ns,
        "ok",
        {
            "initContainers": [
                {
                    "name": "prepare",
                    "image": IMAGE,
                    "command": ["sh", "-c", "echo prepared > /work/flag"],
                    "volumeMounts": shared,
                }
            ],
            "containers": [_sleeper(volumeMounts=shared)],
            "volumes": [{"name": "work", "emptyDir": {}}],
        },
    )
    failing = {"name": "migrate", "image": IMAGE, "command": ["sh", "-c", "echo no db; exit 3"]}
    _pod(core, ns, "bad", {"initContainers": [failing], "containers": [_sleeper()]})
    _pod(
        core,
        ns,
        "once",
        {"restartPolicy": "Never", "initContainers": [failing], "containers": [_sleeper()]},
    )
    wait_for("ok running", lambda: core.read_namespaced_pod("ok", ns).status.phase == "Running")
    assert exec_output(core, ns, "ok", ["cat", "/work/flag"]) == ("prepared\n", 0)
    ok = core.read_namespaced_pod("ok", ns).status
    assert ok.init_container_statuses[0].state.terminated.reason == "Completed"

    def backing_off() -> Any:
        status = core.read_namespaced_pod("bad", ns).status
        init = (status.init_container_statuses or [None])[0]
        waiting = init and init.state.waiting
        return waiting and waiting.reason == "CrashLoopBackOff" and status

    status = wait_for("Init:CrashLoopBackOff", backing_off)
    assert status.phase == "Pending"
    init = status.init_container_statuses[0]
    assert (
        init.last_state.terminated.exit_code == 3 and init.last_state.terminated.reason == "Error"
    )
    initialized = next(c for c in status.conditions if c.type == "Initialized")
    assert initialized.status == "False" and initialized.reason == "ContainersNotInitialized"
    assert status.container_statuses[0].state.waiting.reason == "PodInitializing"
    wait_for("once failed", lambda: core.read_namespaced_pod("once", ns).status.phase == "Failed")


def test_services_map_port_to_target_port(
    kube_services: object, kube_api: KubeApi, ns: str, core: Any
) -> None:
    httpd = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"
    _pod(
        core,
        ns,
        "web-1",  # not "web": the test server's pods resolve by their own name too
        {"containers": [_sleeper(command=["sh", "-c", httpd])]},
    )
    core.patch_namespaced_pod("web-1", ns, {"metadata": {"labels": {"app": "web"}}})
    core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    _pod(core, ns, "client", {"containers": [_sleeper()]})
    wait_for(
        "client running", lambda: core.read_namespaced_pod("client", ns).status.phase == "Running"
    )
    wait_for("web running", lambda: core.read_namespaced_pod("web-1", ns).status.phase == "Running")

    def fetch(port: int) -> tuple[str, int]:
        # busybox-static's wget crashes (glibc NSS in a static binary): nslookup, then nc
        script = (
            "ip=$(nslookup web | awk '/^Address: /{print $2}' | tail -1); "
            f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 $ip {port}'
        )
        return exec_output(core, ns, "client", ["sh", "-c", script])

    answer = wait_for("web:80 answers", lambda: fetch(80)[1] == 0 and fetch(80), timeout=60)
    assert answer[0].endswith("hello\n")
    assert fetch(8080)[1] != 0  # the service does not list 8080


def test_pod_security_admission_enforces_the_namespace_level(ns: str, core: Any) -> None:
    core.patch_namespace(
        ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    with pytest.raises(ApiException) as caught:
        _pod(core, ns, "loose", {"containers": [_sleeper()]})
    assert caught.value.status == 403
    message = caught.value.body
    assert 'pods \\"loose\\" is forbidden: violates PodSecurity \\"restricted:latest\\"' in message
    for part in (
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "runAsNonRoot != true",
        "seccompProfile",
    ):
        assert part in message, message
    tight = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    _pod(core, ns, "tight", {"containers": [_sleeper(securityContext=tight)]})
    core.patch_namespace(
        ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}
    )
    _pod(core, ns, "baseline-ok", {"containers": [_sleeper()]})
    with pytest.raises(ApiException, match="privileged"):
        _pod(
            core,
            ns,
            "privileged",
            {"containers": [_sleeper(securityContext={"privileged": True})]},
        )
