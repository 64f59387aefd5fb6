"""Conformance: the real `kubectl` against the test API server (skipped when none is installed):
the one on PATH and every `kubectl.1.NN` of the Google Cloud SDK, so both exec protocols
(SPDY up to 1.29, WebSocket after) and both port-forward transports (a SPDY upgrade up to
1.30, SPDY tunnelled in WebSocket after) are driven by the real client.

kubectl does not send bearer tokens over plain http, so it acts as the (anonymous = admin)
cluster admin here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi

pytestmark = pytest.mark.docker

KUBECTLS = sorted(
    {
        *([found] if (found := shutil.which("kubectl")) else []),
        *map(str, Path("/usr/lib/google-cloud-sdk/bin").glob("kubectl.1.*")),
    }
)
MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: devloop/busybox:latest
          command: [sh, -c, "echo started-{ns}; echo hello-{ns} > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
"""  # noqa: E501


@pytest.mark.skipif(not KUBECTLS, reason="no kubectl installed")
@pytest.mark.parametrize("kubectl_path", KUBECTLS, ids=lambda p: Path(p).name)
def test_kubectl_apply_get_rollout_logs_exec_port_forward_delete(
    kube_api: KubeApi, kube_namespace: str, tmp_path: Path, docker_client: object, kubectl_path: str
) -> None:
    ns = f"i14s-{kube_namespace}"[:50].rstrip("-")
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST.format(ns=ns))

    def kubectl_argv(path: str = kubectl_path) -> list[str]:
        return [path, "--kubeconfig", str(kube_api.kubeconfig), "-n", ns]

    def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # kubectl <= 1.28 reads /openapi/v2 (protobuf) for apply, which this server does not
        # serve: those apply with the newest kubectl and do everything else themselves
        path = _newest() if args[0] == "apply" and _minor(kubectl_path) < 29 else kubectl_path
        done = subprocess.run(
            [*kubectl_argv(path), *args],
            capture_output=True,
            text=True,
            timeout=90,
        )
        if check:
            assert done.returncode == 0, done.stderr
        return done

    try:
        # validation on (the default): kubectl finds fieldValidation in /openapi/v3
        applied = kubectl("apply", "-f", str(manifest))
        assert "deployment.apps/web created" in applied.stdout
        kubectl("rollout", "status", "deployment/web", "--timeout=60s")
        got = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)
        assert got["status"]["readyReplicas"] == 1
        # server-side Table columns
        header, row = kubectl("get", "deployments").stdout.splitlines()
        assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        assert row.split()[:4] == ["web", "1/1", "1", "1"]
        pods = kubectl("get", "pods").stdout.splitlines()
        assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert pods[1].split()[1:3] == ["1/1", "Running"]
        assert kubectl("logs", "deployment/web").stdout.strip() == f"started-{ns}"
        assert kubectl("exec", "deployment/web", "--", "echo", "from-exec").stdout == "from-exec\n"
        piped = subprocess.run(
            [*kubectl_argv(), "exec", "-i", "deployment/web", "--", "sh", "-c", "cat; exit 3"],
            input="through stdin\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (piped.returncode, piped.stdout) == (3, "through stdin\n"), piped.stderr
        bad = manifest.read_text().replace("replicas: 1", "replicas: 1\n  bogus: 2")
        manifest.write_text(bad)
        rejected = kubectl("apply", "-f", str(manifest), check=False)
        assert rejected.returncode != 0
        assert 'strict decoding error: unknown field "spec.bogus"' in rejected.stderr
        _port_forward(kubectl_argv(), ns)
        kubectl("delete", "deployment", "web", "--wait=true", "--timeout=60s")
        # the pods go by background cascading deletion, as on a cluster
        kubectl("wait", "--for=delete", "pod", "--all", "--timeout=60s")
    finally:
        kube_api.server.delete_namespace(ns)


def _port_forward(kubectl: list[str], ns: str) -> None:
    """`kubectl port-forward` serves the pod's port, and names a port nothing listens on."""
    from tests.devproc import eventually, free_port, http_get

    port, refused = free_port(), free_port()
    while refused == port:
        refused = free_port()
    proc = subprocess.Popen(
        [*kubectl, "port-forward", "deployment/web", f"{port}:8080", f"{refused}:8081"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader: threading.Thread | None = None
    try:
        assert proc.stdout is not None
        # kubectl prints each listener as it opens it: wait for the last one (the second
        # port's listener may open a moment after the first line; a connection before that
        # is refused by the laptop, and kubectl never hears of it)
        seen = ""
        while f"Forwarding from 127.0.0.1:{refused} -> 8081" not in seen:
            line = proc.stdout.readline()
            assert line, seen + proc.stderr.read()
            seen += line
        assert f"Forwarding from 127.0.0.1:{port} -> 8080" in seen, seen
        for _ in range(3):  # one connection each: streams are paired per request
            assert http_get(f"http://127.0.0.1:{port}/index.html") == (200, f"hello-{ns}\n")
        errors: list[str] = []

        def collect() -> None:
            assert proc.stderr is not None
            for line in iter(proc.stderr.readline, ""):
                errors.append(line)

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        assert http_get(f"http://127.0.0.1:{refused}/index.html")[0] == 0  # refused in the pod
        # kubectl reports the error stream's message (and, some versions, ends)
        eventually(
            lambda: any("connect: connection refused" in line for line in errors),
            30,
            what="kubectl's report of the refused port",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if reader is not None:
            reader.join(timeout=10)  # the pipe's EOF ends it
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _minor(path: str) -> int:
    """kubectl's minor version, from `kubectl version --client -o json`."""
    done = subprocess.run(
        [path, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30
    )
    return int("".join(c for c in json.loads(done.stdout)["clientVersion"]["minor"] if c.isdigit()))


def _newest() -> str:
    return max(KUBECTLS, key=_minor)
