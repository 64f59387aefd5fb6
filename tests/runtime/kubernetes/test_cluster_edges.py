"""devloop against what real clusters impose (issue 14): prune and delete from the record of what
devloop applied (under a namespaced `edit` Role, across namespaces and cluster-scoped kinds),
manifests validated before they are applied."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import pytest

from tests.runtime.kubernetes.scenarios import (
    EXTRA,
    Target,
    applied,
    cleanup_images,
    delete_coverage,
    devloop,
    init_failure_diagnosis,
    missing_volume_diagnosis,
    non_root_diagnosis,
    pod_security_diagnosis,
    policy_kinds_coverage,
    quota_diagnosis,
    write_project,
)

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi, KubeFault, KubeUser

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def name(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    project = f"i14c{uuid.uuid4().hex[:8]}"
    yield project
    cleanup_images(docker_client, project)


@pytest.fixture
def namespace(name: str, kube_api: KubeApi, kube_namespace: str) -> Iterator[str]:
    # `name` first: its images are removed after the namespace (and its pods) is gone
    ns = f"i14c-{kube_namespace}"[:50].rstrip("-")
    yield ns
    kube_api.server.delete_namespace(ns)
    kube_api.server.delete_namespace(f"{ns}-other")


def test_run_and_delete_under_an_edit_role(
    tmp_path: Path, kube_user: KubeUser, namespace: str, name: str
) -> None:
    kubeconfig = kube_user(f"i14c-{name}", namespace=namespace, role="edit")
    target = Target(kubeconfig, "devloop-kubeapi", namespace)
    write_project(tmp_path, target, name)
    result = devloop(tmp_path, target, "run", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    assert sorted(applied(target, name)) == ["ConfigMap/web-extra", "Deployment/web", "Service/web"]

    # the ConfigMap removed from the templates is pruned by the next run, with no list calls
    template = tmp_path / "k8s/web.yaml.j2"
    template.write_text(template.read_text().replace(EXTRA, ""))
    result = devloop(tmp_path, target, "run", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    assert sorted(applied(target, name)) == ["Deployment/web", "Service/web"]

    result = devloop(tmp_path, target, "delete")
    assert result.returncode == 0, result.stderr
    assert "deleted 2 object(s)" in result.stdout, result.stdout
    assert applied(target, name) == []


def test_delete_covers_other_namespaces_and_cluster_scoped_kinds(
    tmp_path: Path, kube_api: KubeApi, namespace: str, name: str
) -> None:
    kubeconfig = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", "devloop-kubeapi")
    target = Target(kubeconfig, "devloop-kubeapi", namespace)
    delete_coverage(tmp_path, target, name)


def test_manifests_a_server_rejects_fail_before_applying(
    tmp_path: Path, kube_api: KubeApi, namespace: str, name: str
) -> None:
    kubeconfig = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", "devloop-kubeapi")
    target = Target(kubeconfig, "devloop-kubeapi", namespace)
    write_project(tmp_path, target, name)
    template = tmp_path / "k8s/web.yaml.j2"
    template.write_text(
        template.read_text().replace("  replicas: 1\n", '  replicas: "1"\n  bogus: true\n')
    )
    result = devloop(tmp_path, target, "run", "--timeout", "60")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "would be rejected by the API server" in result.stderr, result.stderr
    assert "Deployment/web: spec: unknown field 'bogus'" in result.stderr, result.stderr
    assert "spec.replicas" in result.stderr, result.stderr
    assert applied(target, name) == []


def test_api_errors_during_dev_are_reported_and_retried(
    tmp_path: Path, kube_api: KubeApi, kube_fault: KubeFault, namespace: str, name: str
) -> None:
    from tests.devproc import DevProcess, eventually
    from tests.kubeapi.faults import Rule
    from tests.runtime.kubernetes.scenarios import pods

    target = Target(kube_fault.kubeconfig, "devloop-kubeapi", namespace)
    write_project(tmp_path, target, name)
    dev = DevProcess(tmp_path, env=target.env)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        [first] = pods(target, name)
        # the list of the service's pods answers 500 four times (not the pod watch)
        kube_fault.front.add(
            Rule(
                "status",
                status=500,
                method="GET",
                path=r"^(?!.*watch=true).*/pods\?.*service(%3D|=)web",
                times=4,
            )
        )
        mark = dev.mark()
        target.core().delete_namespaced_pod(
            first.metadata.name, namespace, grace_period_seconds=0, _preload_content=False
        )
        error = dev.wait_event("error", since=mark, timeout=60)
        assert "500" in error["message"] and "retrying in" in error["message"], error
        dev.wait_event("ready", since=mark, service="web", timeout=120)
        eventually(lambda: len(pods(target, name)) == 1, 60, what="the new pod")
        assert dev.proc.poll() is None, dev.describe()
    finally:
        code = dev.interrupt(timeout=120)
    assert code in (0, 130), dev.describe()
    assert applied(target, name) == []


def test_a_quota_that_refuses_pods_ends_the_rollout_wait_with_its_reason(
    tmp_path: Path, kube_api: KubeApi, namespace: str, name: str
) -> None:
    kubeconfig = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", "devloop-kubeapi")
    target = Target(kubeconfig, "devloop-kubeapi", namespace)
    quota_diagnosis(tmp_path, target, name)


@pytest.mark.parametrize(
    "scenario",
    [init_failure_diagnosis, missing_volume_diagnosis, non_root_diagnosis, pod_security_diagnosis],
    ids=["init-container", "missing-configmap-volume", "run-as-non-root", "pod-security"],
)
def test_pods_that_cannot_start_end_the_rollout_wait_with_their_reason(
    tmp_path: Path, kube_api: KubeApi, namespace: str, name: str, scenario: Any
) -> None:
    kubeconfig = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", "devloop-kubeapi")
    scenario(tmp_path, Target(kubeconfig, "devloop-kubeapi", namespace), name)


def test_run_waits_for_a_terminating_namespace(
    tmp_path: Path, kube_api: KubeApi, namespace: str, name: str
) -> None:
    import threading

    kubeconfig = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", "devloop-kubeapi")
    target = Target(kubeconfig, "devloop-kubeapi", namespace)
    write_project(tmp_path, target, name)
    target.core().create_namespace({"metadata": {"name": namespace}})
    kube_api.server.hold_terminating(namespace)  # a previous `kubectl delete ns` still finishing
    threading.Timer(4.0, kube_api.server.release_namespace, (namespace,)).start()
    result = devloop(tmp_path, target, "run", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    assert f"namespace {namespace} is still terminating; waiting" in result.stderr, result.stderr
    assert sorted(applied(target, name)) == ["ConfigMap/web-extra", "Deployment/web", "Service/web"]


TICKING_DOCKERFILE = """\
FROM devloop/busybox:latest
COPY site /www
COPY conf /conf
COPY README.md /README.md
EXPOSE 8080
CMD ["sh", "-c", "(i=0; while true; do i=$((i+1)); echo tick-$i; sleep 1; done) & exec httpd -f -p 8080 -h /www"]
"""  # noqa: E501


def _ticks(events: list[dict[str, object]]) -> list[int]:
    return [
        int(str(e["line"]).removeprefix("tick-"))
        for e in events
        if e.get("event") == "log" and str(e.get("line", "")).startswith("tick-")
    ]


def test_connections_dropped_without_a_word_are_noticed_and_resumed(
    tmp_path: Path, kube_api: KubeApi, kube_fault: KubeFault, namespace: str, name: str
) -> None:
    """Every open connection black-holed (no FIN, no RST; new ones work, as after a NAT or load
    balancer forgot them): the next edit lands in seconds with a warning, the log follow resumes
    without losing or repeating a line, the pod watch resumes (a deleted pod is replayed)."""
    from tests.devproc import DevProcess, eventually
    from tests.runtime.kubernetes.scenarios import pods, serves

    target = Target(kube_fault.kubeconfig, "devloop-kubeapi", namespace)
    port = write_project(tmp_path, target, name, dockerfile=TICKING_DOCKERFILE)
    url = f"http://127.0.0.1:{port}"
    dev = DevProcess(tmp_path, env=target.env)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        mark = dev.mark()
        (tmp_path / "app/site/index.html").write_text("v2\n")
        dev.wait_event("sync", since=mark, service="web")  # the sync stream is open
        eventually(lambda: serves(f"{url}/index.html", "v2"), 30, what="v2 served")
        eventually(lambda: len(_ticks(dev.events)) >= 2, 30, what="the ticking log followed")

        held = kube_fault.front.blackhole_open()
        assert held >= 3, held  # at least the sync stream, the pod watch, the log follow
        before = max(_ticks(dev.events))
        mark = dev.mark()
        (tmp_path / "app/site/index.html").write_text("v3\n")
        done = dev.wait_event("sync", since=mark, service="web", timeout=60)
        warnings = [e for e in dev.events[mark:] if e["event"] == "warning"]
        assert any("stopped answering" in str(w["message"]) for w in warnings), dev.describe()
        print(f"sync after the black hole: {done['ms']} ms")
        assert done["ms"] < 15_000, done  # was the whole 30 s batch timeout, plus 3 s, silently
        eventually(lambda: serves(f"{url}/index.html", "v3"), 30, what="v3 served")

        # the log follow went silent; it resumes from its last line: none lost, none repeated
        eventually(
            lambda: max(_ticks(dev.events)) > before + 20, 90, what="ticks after the black hole"
        )
        ticks = _ticks(dev.events)
        assert ticks == list(range(1, len(ticks) + 1)), ticks

        # the pod watch resumed: a deleted pod's replacement gets the synced files replayed
        [first] = pods(target, name)
        mark = dev.mark()
        target.core().delete_namespaced_pod(
            first.metadata.name, namespace, grace_period_seconds=0, _preload_content=False
        )
        dev.wait_event("sync", since=mark, service="web", replay=True, timeout=120)
        eventually(lambda: serves(f"{url}/index.html", "v3"), 60, what="v3 in the new pod")
        assert dev.proc.poll() is None, dev.describe()
    finally:
        code = dev.interrupt(timeout=120)
    assert code in (0, 130), dev.describe()
    assert applied(target, name) == []


def test_a_new_dev_replaces_pods_a_crashed_session_synced_into(
    tmp_path: Path, kube_api: KubeApi, namespace: str, name: str
) -> None:
    """dev syncs v2 and is killed (no teardown); the tree goes back to v1, so the image is the
    one running; the next dev must not call the old pod ready: it serves the synced v2."""
    from tests.devproc import DevProcess, eventually, http_get
    from tests.runtime.kubernetes.scenarios import pods, serves

    kubeconfig = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", "devloop-kubeapi")
    target = Target(kubeconfig, "devloop-kubeapi", namespace)
    port = write_project(tmp_path, target, name)
    url = f"http://127.0.0.1:{port}/index.html"
    crashed = DevProcess(tmp_path, env=target.env)
    try:
        crashed.wait_event("ready", service="web", timeout=180)
        mark = crashed.mark()
        (tmp_path / "app/site/index.html").write_text("v2\n")
        crashed.wait_event("sync", since=mark, service="web")
        eventually(lambda: serves(url, "v2"), 30, what="v2 served")
    finally:
        crashed.proc.kill()  # a crash: nothing torn down
        crashed.wait(timeout=30)
    [old] = pods(target, name)
    (tmp_path / "app/site/index.html").write_text("v1\n")  # e.g. `git checkout .`

    dev = DevProcess(tmp_path, env=target.env)
    try:
        dev.wait_event("ready", service="web", timeout=180)
        seen: list[str] = []

        def answered() -> bool:
            status, body = http_get(url)
            if status == 200:
                seen.append(body)
            return status == 200

        eventually(answered, 60, what="an answer through the new session's port-forward")
        assert seen == ["v1\n"], seen
        assert old.metadata.name not in [p.metadata.name for p in pods(target, name)]
        assert any("synced by an earlier devloop session" in line for line in dev.stderr), (
            dev.describe()
        )
    finally:
        code = dev.interrupt(timeout=120)
    assert code in (0, 130), dev.describe()
    assert applied(target, name) == []


def test_policy_kinds_are_pruned_and_deleted_under_an_edit_role(
    tmp_path: Path, kube_user: KubeUser, namespace: str, name: str
) -> None:
    kubeconfig = kube_user(f"i14c-{name}", namespace=namespace, role="edit")
    policy_kinds_coverage(tmp_path, Target(kubeconfig, "devloop-kubeapi", namespace), name)
