"""Conformance: the real `kubectl` against the test API server (skipped when none is installed).

kubectl does not send bearer tokens over plain http, so it acts as the (anonymous = admin)
cluster admin here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi

pytestmark = pytest.mark.docker

KUBECTL = shutil.which("kubectl")
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
          command: [sh, -c, "echo started-{ns}; exec sleep 3600"]
"""


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl on PATH")
def test_kubectl_apply_get_rollout_logs_exec_delete(
    kube_api: KubeApi, kube_namespace: str, tmp_path: Path, docker_client: object
) -> None:
    assert KUBECTL is not None
    ns = f"i14s-{kube_namespace}"[:63].rstrip("-")
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST.format(ns=ns))

    def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [KUBECTL, "--kubeconfig", str(kube_api.kubeconfig), "-n", ns, *args],
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
        bad = manifest.read_text().replace("replicas: 1", "replicas: 1\n  bogus: 2")
        manifest.write_text(bad)
        rejected = kubectl("apply", "-f", str(manifest), check=False)
        assert rejected.returncode != 0
        assert 'strict decoding error: unknown field "spec.bogus"' in rejected.stderr
        # port-forward: kubectl tunnels SPDY (not modelled): a clear refusal, not a hang
        forward = kubectl("port-forward", "deployment/web", "0:80", check=False)
        assert forward.returncode != 0 and "not supported by this test API server" in forward.stderr
        kubectl("delete", "deployment", "web", "--wait=true", "--timeout=60s")
        # the pods go by background cascading deletion, as on a cluster
        kubectl("wait", "--for=delete", "pod", "--all", "--timeout=60s")
    finally:
        kube_api.server.delete_namespace(ns)
