"""The Kubernetes end-to-end scenarios, shared by the test API server suite and the real-cluster
suite.

No tests here: tests/test_kubernetes.py runs them against tests/kubeapi, tests/test_cluster.py
against the cluster in DEVLOOP_TEST_KUBECONFIG.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as kubeconfig

from tests import event_schema
from tests.devproc import HTTPD_DOCKERFILE, DevProcess, eventually, free_port, http_get

PART_OF = "app.kubernetes.io/part-of"

DOCKERFILE = HTTPD_DOCKERFILE

CRASHING_DOCKERFILE = """\
FROM devloop/busybox:latest
CMD ["sh", "-c", "echo starting up; echo boom-last-line; exit 3"]
"""

TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: web
          image: {{ IMAGE }}
          ports: [{containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /index.html, port: 8080}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 8080, targetPort: 8080}]
"""

EXTRA = """\
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-extra
data: {greeting: hello}
"""

CONFIG = """\
name: {name}
kubernetes: {{context: {context}, namespace: {namespace}, allowed_contexts: [{context}], rollout_timeout: 120}}
{registry}services:
  web:
    image: devloop-test-k8s/{name}
    context: app
    manifests: [k8s/web.yaml.j2]
    ports: ["{port}:8080"]
    sync:
      - src: "site/**"
        dest: /www
      - src: "conf/**"
        dest: /conf
        then: restart
"""  # noqa: E501


@dataclass(frozen=True)
class Target:
    """A Kubernetes API to run against: its kubeconfig, context, a fresh namespace, a registry if it
    needs one."""

    kubeconfig: Path
    context: str
    namespace: str
    registry: str | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(
            kubeconfig.new_client_from_config(str(self.kubeconfig), context=self.context)
        )

    def apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(
            kubeconfig.new_client_from_config(str(self.kubeconfig), context=self.context)
        )


def write_project(
    root: Path,
    target: Target,
    name: str,
    *,
    dockerfile: str = DOCKERFILE,
    image: str = "{{ image | quote }}",
    extra: str = EXTRA,
) -> int:
    """A one-service project (busybox httpd) deploying `k8s/web.yaml.j2`; its local port."""
    port = free_port()
    files = {
        "app/Dockerfile": dockerfile,
        "app/site/index.html": "v1\n",
        "app/conf/message": "first\n",
        "app/README.md": "outside the sync rules\n",
        "k8s/web.yaml.j2": TEMPLATE.replace("{{ IMAGE }}", image) + extra,
        "devloop.yaml": CONFIG.format(
            name=name,
            context=target.context,
            namespace=target.namespace,
            port=port,
            registry=f"registry: {target.registry}\n" if target.registry else "",
        ),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return port


def devloop(
    root: Path, target: Target, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`devloop --output json ARGS` in `root`, to completion."""
    done = subprocess.run(
        [sys.executable, "-m", "devloop", "-C", str(root), "--output", "json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **target.env},
    )
    event_schema.check_stream(done.stdout)
    return done


def serves(url: str, text: str) -> bool:
    status, body = http_get(url)
    return status == 200 and text in body


def pods(target: Target, name: str) -> list[Any]:
    """The project's pods that are not terminating."""
    items = (
        target.core()
        .list_namespaced_pod(target.namespace, label_selector=f"{PART_OF}={name}")
        .items
    )
    return [p for p in items if p.metadata.deletion_timestamp is None]


def applied(target: Target, name: str) -> list[str]:
    """What devloop applied that is still in the namespace: Deployments, Services, ConfigMaps."""
    selector = f"{PART_OF}={name}"
    found = [
        f"Deployment/{d.metadata.name}"
        for d in target.apps()
        .list_namespaced_deployment(target.namespace, label_selector=selector)
        .items
    ]
    core = target.core()
    found += [
        f"Service/{s.metadata.name}"
        for s in core.list_namespaced_service(target.namespace, label_selector=selector).items
    ]
    found += [
        f"ConfigMap/{c.metadata.name}"
        for c in core.list_namespaced_config_map(target.namespace, label_selector=selector).items
    ]
    return found


def dev_loop(root: Path, target: Target, name: str, port: int) -> None:
    """edit → served; add, delete; restart in place; pod killed → replay; rebuild → rollout; prune;
    Ctrl-C."""
    url = f"http://127.0.0.1:{port}"
    dev = DevProcess(root, env=target.env)
    try:
        dev.wait_event("ready", service="web", timeout=240)
        eventually(
            lambda: serves(f"{url}/index.html", "v1"), 60, what="v1 served through the port-forward"
        )
        [first] = pods(target, name)
        assert "ConfigMap/web-extra" in applied(target, name)

        _edit_add_delete(dev, root, url)
        _restart_in_place(dev, root, url)
        assert [p.metadata.name for p in pods(target, name)] == [first.metadata.name]

        # the pod deleted through the API: the Deployment's new pod gets the synced files replayed
        mark = dev.mark()
        # the raw answer: the test server answers a Status where a real one returns the Pod
        target.core().delete_namespaced_pod(
            first.metadata.name, target.namespace, grace_period_seconds=0, _preload_content=False
        )
        dev.wait_event("sync", since=mark, service="web", replay=True, timeout=120)
        eventually(
            lambda: serves(f"{url}/index.html", "v2"),
            60,
            what="replayed edit served by the new pod",
        )
        eventually(lambda: serves(f"{url}/message.txt", "second"), 30, what="the replayed restart")

        replaced = _rebuild(dev, root, url, target, name)
        assert replaced != first.metadata.name

        # a resource removed from the templates is pruned
        mark = dev.mark()
        template = root / "k8s/web.yaml.j2"
        template.write_text(template.read_text().replace(EXTRA, ""))
        dev.wait_event("deploy", since=mark, service="web", timeout=120)
        eventually(
            lambda: "ConfigMap/web-extra" not in applied(target, name),
            30,
            what="the ConfigMap pruned",
        )
        assert "Deployment/web" in applied(target, name)
    finally:
        code = dev.interrupt(timeout=120)
    assert code in (0, 130), dev.describe()
    assert applied(target, name) == [], "Ctrl-C left objects devloop applied"
    eventually(lambda: pods(target, name) == [], 90, what="the pods to go after Ctrl-C")


def _edit_add_delete(dev: DevProcess, root: Path, url: str) -> None:
    mark = dev.mark()
    (root / "app/site/index.html").write_text("v2\n")
    done = dev.wait_event("sync", since=mark, service="web")
    assert done["files"] == 1 and not done["replay"]
    eventually(lambda: serves(f"{url}/index.html", "v2"), 20, what="v2 served")

    mark = dev.mark()
    (root / "app/site/extra.html").write_text("extra\n")
    dev.wait_event("sync", since=mark, service="web")
    eventually(lambda: serves(f"{url}/extra.html", "extra"), 20, what="extra served")
    mark = dev.mark()
    (root / "app/site/extra.html").unlink()
    dev.wait_event("sync", since=mark, service="web", deleted=1)
    eventually(lambda: http_get(f"{url}/extra.html")[0] == 404, 20, what="extra gone")


def _restart_in_place(dev: DevProcess, root: Path, url: str) -> None:
    started = http_get(f"{url}/started.txt")[1]
    mark = dev.mark()
    (root / "app/conf/message").write_text("second\n")
    dev.wait_event("restart", since=mark, service="web")
    eventually(
        lambda: serves(f"{url}/message.txt", "second"), 30, what="the restarted process serving"
    )
    assert http_get(f"{url}/started.txt")[1] != started


def _rebuild(dev: DevProcess, root: Path, url: str, target: Target, name: str) -> str:
    """A change outside the sync rules: rebuild, roll out, and the new pod serves the synced
    edits."""
    mark = dev.mark()
    (root / "app/site/index.html").write_text("v3\n")
    dev.wait_event("sync", since=mark, service="web")
    (root / "app/README.md").write_text("changed\n")
    dev.wait_event("build_done", since=mark, service="web", timeout=180)
    dev.wait_event("ready", since=mark, service="web", timeout=180)
    eventually(lambda: serves(f"{url}/index.html", "v3"), 60, what="v3 after the rebuild")
    current: list[str] = eventually(
        lambda: (
            [
                p.metadata.name
                for p in pods(target, name)
                if all(c.ready for c in p.status.container_statuses or [])
            ]
            or None
        ),
        60,
        what="one ready pod after the rollout",
    )
    return current[0]


def crash_diagnosis(root: Path, target: Target, name: str) -> None:
    """`devloop run` of a crashing container exits 1 naming CrashLoopBackOff and its last log
    line."""
    write_project(root, target, name, dockerfile=CRASHING_DOCKERFILE)
    result = devloop(root, target, "run", "--timeout", "180")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CrashLoopBackOff" in result.stderr, result.stderr
    assert "boom-last-line" in result.stderr, result.stderr
    assert "exited with code 3" in result.stderr, result.stderr


def pull_diagnosis(root: Path, target: Target, name: str) -> None:
    """An image that cannot be pulled: the diagnosis names it and its registry."""
    write_project(root, target, name, image="127.0.0.1:5000/nope:missing")
    result = devloop(root, target, "run", "--timeout", "180")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "127.0.0.1:5000/nope:missing" in result.stderr, result.stderr
    assert "registry 127.0.0.1:5000" in result.stderr, result.stderr
    assert any(r in result.stderr for r in ("ErrImagePull", "ImagePullBackOff")), result.stderr


def probe_diagnosis(root: Path, target: Target, name: str) -> None:
    """A readiness probe that never passes: at the deadline, the probe's failure instead of a
    timeout."""
    write_project(root, target, name)
    template = root / "k8s/web.yaml.j2"
    template.write_text(template.read_text().replace("path: /index.html", "path: /missing.html"))
    result = devloop(root, target, "run", "--timeout", "8")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "did not become ready within 8 s" in result.stderr, result.stderr
    assert "Readiness probe failed" in result.stderr and "404" in result.stderr, result.stderr


def pending_diagnosis(root: Path, target: Target, name: str) -> None:
    """A pod no node can take: the scheduler's reason."""
    write_project(root, target, name)
    template = root / "k8s/web.yaml.j2"
    template.write_text(
        template.read_text().replace(
            "      terminationGracePeriodSeconds: 2\n",
            "      terminationGracePeriodSeconds: 2\n      nodeSelector: {devloop.dev/nowhere: "
            '"true"}\n',
        )
    )
    result = devloop(root, target, "run", "--timeout", "8")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "is Pending: not scheduled: Unschedulable" in result.stderr, result.stderr


def delete_coverage(root: Path, target: Target, name: str) -> None:
    """`delete` removes what devloop applied in another namespace and cluster-scoped objects."""
    other = f"{target.namespace}-other"
    extra = (
        EXTRA
        + f"""---
apiVersion: v1
kind: ConfigMap
metadata: {{name: elsewhere, namespace: {other}}}
data: {{a: b}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {name}-reader}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [get]}}]
"""
    )
    write_project(root, target, name, extra=extra)
    result = devloop(root, target, "run", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    core = target.core()
    rbac = k8s.RbacAuthorizationV1Api(core.api_client)
    assert core.read_namespaced_config_map("elsewhere", other).data == {"a": "b"}
    role = rbac.read_cluster_role(f"{name}-reader")
    assert role.metadata is not None and role.metadata.name == f"{name}-reader"

    result = devloop(root, target, "delete")
    assert result.returncode == 0, result.stderr
    assert "deleted 5 object(s)" in result.stdout, result.stdout
    for call in (
        lambda: core.read_namespaced_config_map("elsewhere", other),
        lambda: rbac.read_cluster_role(f"{name}-reader"),
    ):
        with pytest.raises(k8s.ApiException) as caught:
            call()
        assert caught.value.status == 404
    core.delete_namespace(other, _preload_content=False)  # devloop made it; it never deletes one


def quota_diagnosis(root: Path, target: Target, name: str) -> None:
    """A ResourceQuota that refuses pods ends the rollout wait with the quota's message."""
    write_project(root, target, name)
    core = target.core()
    core.create_namespace({"metadata": {"name": target.namespace}})
    core.create_namespaced_resource_quota(
        target.namespace,
        {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}},
    )
    result = devloop(root, target, "run", "--timeout", "100")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pods cannot be created" in result.stderr, result.stderr
    assert "exceeded quota: no-pods" in result.stderr, result.stderr
    assert "did not become ready within" not in result.stderr, result.stderr


def cleanup_images(docker_client: Any, name: str) -> None:
    for img in docker_client.images.list(name=f"devloop-test-k8s/{name}"):
        docker_client.images.remove(img.id, force=True)


def _patch_pod_spec(root: Path, addition: str) -> None:
    """Add lines (indented as pod spec keys) to the Deployment's pod spec."""
    template = root / "k8s/web.yaml.j2"
    template.write_text(
        template.read_text().replace(
            "      terminationGracePeriodSeconds: 2\n",
            "      terminationGracePeriodSeconds: 2\n" + addition,
        )
    )


def _fails_early(root: Path, target: Target, timeout: int = 150) -> str:
    """`devloop run` that must fail with a reason before its rollout deadline; its stderr."""
    result = devloop(root, target, "run", "--timeout", str(timeout))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "did not become ready within" not in result.stderr, result.stderr
    assert "has no pods yet" not in result.stderr, result.stderr
    return result.stderr


def init_failure_diagnosis(root: Path, target: Target, name: str) -> None:
    """A failing init container ends the rollout wait naming it, its exit code and its log."""
    write_project(root, target, name)
    _patch_pod_spec(
        root,
        "      initContainers:\n"
        "        - name: setup\n"
        "          image: {{ image | quote }}\n"
        '          command: ["sh", "-c", "echo init-went-wrong; exit 4"]\n',
    )
    stderr = _fails_early(root, target)
    assert "init container setup" in stderr, stderr
    assert "exited with code 4" in stderr, stderr
    assert "init-went-wrong" in stderr, stderr


def missing_volume_diagnosis(root: Path, target: Target, name: str) -> None:
    """A ConfigMap volume whose ConfigMap does not exist ends the wait with the kubelet's
    FailedMount."""
    write_project(root, target, name)
    _patch_pod_spec(
        root,
        "      volumes: [{name: settings, configMap: {name: absent-settings}}]\n",
    )
    template = root / "k8s/web.yaml.j2"
    template.write_text(
        template.read_text().replace(
            "          ports: [{containerPort: 8080}]\n",
            "          ports: [{containerPort: 8080}]\n"
            "          volumeMounts: [{name: settings, mountPath: /settings}]\n",
        )
    )
    stderr = _fails_early(root, target)
    assert "FailedMount" in stderr, stderr
    assert 'configmap "absent-settings" not found' in stderr, stderr


def non_root_diagnosis(root: Path, target: Target, name: str) -> None:
    """runAsNonRoot on an image that runs as root: the kubelet's refusal, at once."""
    write_project(root, target, name)
    _patch_pod_spec(root, "      securityContext: {runAsNonRoot: true}\n")
    stderr = _fails_early(root, target)
    assert "CreateContainerConfigError" in stderr, stderr
    assert "runAsNonRoot and image will run as root" in stderr, stderr


def pod_security_diagnosis(root: Path, target: Target, name: str) -> None:
    """A namespace enforcing the `restricted` Pod Security level refuses the pods: the
    ReplicaSet's FailedCreate, naming what violates it."""
    write_project(root, target, name)
    core = target.core()
    core.create_namespace(
        {
            "metadata": {
                "name": target.namespace,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            }
        }
    )
    stderr = _fails_early(root, target)
    assert "pods cannot be created" in stderr, stderr
    assert 'violates PodSecurity "restricted:latest"' in stderr, stderr
    assert "runAsNonRoot != true" in stderr, stderr


POLICIES = """\
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 2
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 8080}]}]
"""  # noqa: E501


def _policies(target: Target) -> list[str]:
    api = target.core().api_client
    ns = target.namespace
    found = [
        f"HorizontalPodAutoscaler/{o.metadata.name}"
        for o in k8s.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler(ns).items
    ]
    found += [
        f"PodDisruptionBudget/{o.metadata.name}"
        for o in k8s.PolicyV1Api(api).list_namespaced_pod_disruption_budget(ns).items
    ]
    found += [
        f"NetworkPolicy/{o.metadata.name}"
        for o in k8s.NetworkingV1Api(api).list_namespaced_network_policy(ns).items
    ]
    return found


def policy_kinds_coverage(root: Path, target: Target, name: str) -> None:
    """An HPA, a PDB and a NetworkPolicy are applied, pruned once no longer rendered, and
    deleted by `delete`."""
    write_project(root, target, name, extra=EXTRA + POLICIES)
    result = devloop(root, target, "run", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    kinds = ["HorizontalPodAutoscaler/web", "NetworkPolicy/web", "PodDisruptionBudget/web"]
    assert sorted(_policies(target)) == kinds
    template = root / "k8s/web.yaml.j2"
    template.write_text(template.read_text().replace(POLICIES, ""))
    result = devloop(root, target, "run", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    assert _policies(target) == []
    template.write_text(template.read_text() + POLICIES)
    result = devloop(root, target, "run", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    result = devloop(root, target, "delete")
    assert result.returncode == 0, result.stderr
    assert _policies(target) == [] and applied(target, name) == []
