"""`dev --local api` on the Kubernetes target (the test API server): the relay Deployment with
the api's labels serves the frontend's calls from the local process; Ctrl-C restores the
Deployment's and Service's specs exactly."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as kubeconfig
from kubernetes.stream import stream

from tests.bridge.test_local_docker import (  # noqa: F401 (a fixture)
    LOCAL_API,
    Dev,
    _free_port,
    _get,
    _no_devloop_left,
)
from tests.project_fixture import DevloopProject, Files

if TYPE_CHECKING:
    from tests.kubeapi.fixture import KubeApi

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = "devloop-kubeapi"
pytestmark = [pytest.mark.docker]


@pytest.fixture
def shop(
    tmp_path: Path,
    kube_api: KubeApi,
    kube_namespace: str,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Path, str, int, str]]:
    name = f"i18k{uuid.uuid4().hex[:8]}"
    config_path = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", CONTEXT)
    monkeypatch.setenv("KUBECONFIG", str(config_path))
    shutil.copytree(ROOT / "samples" / "shop", tmp_path / "samples" / "shop")
    root = yaml.safe_load((ROOT / "devloop.yaml").read_text())
    services = {n: dict(root["services"][n]) for n in ("base", "api", "frontend")}
    for svc in services.values():
        svc["image"] = svc["image"].replace("devloop-samples/", f"{name}/")
    api_port, web_port = _free_port(), _free_port()
    services["api"]["values"] = {"port": api_port, "probe_path": "/healthz"}
    services["api"]["env"] = {"PORT": str(api_port), "GREETING": "from the pod's env"}
    services["api"]["local"] = {
        "command": f"{sys.executable} local_api.py",
        "env": {"PYTHONPATH": str(tmp_path / "samples" / "shop" / "base")},
    }
    services["frontend"]["ports"] = [f"{web_port}:8080"]
    services["frontend"]["env"] = {"API_URL": f"http://api:{api_port}/"}
    (tmp_path / "local_api.py").write_text(LOCAL_API)
    doc = {
        "name": name,
        "kubernetes": {
            "context": CONTEXT,
            "namespace": kube_namespace,
            "allowed_contexts": [CONTEXT],
            "rollout_timeout": 180,
        },
        "services": services,
    }
    (tmp_path / "devloop.yaml").write_text(yaml.safe_dump(doc))
    yield tmp_path, name, web_port, kube_namespace
    while _CLIENTS:
        _CLIENTS.pop().close()
    kube_api.server.delete_namespace(kube_namespace)  # its pods use the images
    for img in docker_client.images.list():
        for tag in img.tags:  # by tag: an image id may carry another project's tags too
            if tag.startswith(f"{name}/"):
                with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
                    docker_client.images.remove(tag, force=True)


_CLIENTS: list[Any] = []


def _apis() -> tuple[k8s.CoreV1Api, k8s.AppsV1Api]:
    if not _CLIENTS:
        _CLIENTS.append(
            kubeconfig.new_client_from_config(os.environ["KUBECONFIG"], context=CONTEXT)
        )
    return k8s.CoreV1Api(_CLIENTS[0]), k8s.AppsV1Api(_CLIENTS[0])


def _eventually(check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("never happened")


ASK = (
    "import urllib.request as u, sys; r = u.Request(sys.argv[1], headers={'x-dev': "
    "sys.argv[2]}); print(u.urlopen(r, timeout=20).read().decode())"
)


def _asker(ns: str, api_port: int) -> Callable[[str], dict[str, Any]]:
    """GET http://api:PORT/ from inside the frontend's pod, with header x-dev: WHO."""
    core, _ = _apis()
    pods = core.list_namespaced_pod(ns, label_selector="devloop.dev/service=frontend").items
    web = next(p.metadata.name for p in pods if p.status.phase == "Running")

    def answer(who: str) -> dict[str, Any]:
        with kubeconfig.new_client_from_config(os.environ["KUBECONFIG"], context=CONTEXT) as api:
            return _ask(k8s.CoreV1Api(api), ns, web, api_port, who)

    return answer


def _ask(core: k8s.CoreV1Api, ns: str, web: str, api_port: int, who: str) -> dict[str, Any]:
    out = stream(
        core.connect_get_namespaced_pod_exec,
        web,
        ns,
        command=["python3", "-c", ASK, f"http://api:{api_port}/", who],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    try:
        out.run_forever(timeout=30)
        text = out.read_stdout()
    finally:
        out.close()
        out.sock.shutdown()  # the client's close() leaks the socket once the server closed first
    lines = str(text).strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise OSError(f"no answer: {text!r}")
    return dict(json.loads(lines[-1]))


def _specs(ns: str) -> tuple[dict[str, Any], dict[str, Any]]:
    core, apps = _apis()
    dep = apps.read_namespaced_deployment("api", ns).to_dict()["spec"]
    svc = core.read_namespaced_service("api", ns).to_dict()["spec"]
    return dep, svc


def _applied_specs(ns: str, timeout: float = 600) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment's and Service's specs, the first moment both exist."""
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return _specs(ns)
        except ApiException as exc:
            if exc.status != 404:
                raise
        time.sleep(0.05)
    raise AssertionError("the api Deployment and Service never appeared")


def test_local_api_on_kubernetes(shop: tuple[Path, str, int, str]) -> None:
    directory, _name, web_port, ns = shop
    dev = Dev(directory, "--keep", "--local", "api", "--env-urls")
    # the spec as devloop applied it, read as soon as it exists: the intercept starts right
    # after the services are ready and scales the Deployment down
    dep_before, svc_before = _applied_specs(ns)
    started = dev.wait_for("intercept_started", timeout=600)
    assert dep_before["replicas"] == 1
    frontend = f"http://127.0.0.1:{web_port}/"
    # (until the scaled-down pod has left the Service's endpoints, a call may still reach it
    # and fail: the frontend answers 502 then)
    local = {"service": "api", "local": True, "greeting": "from the pod's env"}
    _eventually(lambda: _get(frontend)["api"] == local)
    api_port = started["ports"][0]
    assert _get(f"http://127.0.0.1:{api_port}/peer") == {"peer": {"status": "ok"}}
    assert dev.interrupt() == 130, dev.err
    assert next(e for e in dev.seen if e["event"] == "intercept_ended")["relayed"] >= 1
    core, apps = _apis()
    assert _specs(ns) == (dep_before, svc_before)  # the spec as it was, field for field
    left = apps.list_namespaced_deployment(ns, label_selector="devloop.dev/relay").items
    assert not left
    # the original pod serves again (asked from the frontend's pod: devloop's forwards are gone)
    _eventually(lambda: "local" not in _asker(ns, api_port)("nobody"))

    # a personal intercept: the originals keep serving; the header picks the local process
    dev = Dev(directory, "--keep", "--local", "api", "--intercept-header", "x-dev=alice")
    dev.wait_for("intercept_started", timeout=300)
    answer = _asker(ns, api_port)
    _eventually(lambda: answer("alice").get("local") is True)
    assert "local" not in answer("bob")
    assert "local" not in _get(frontend)["api"]
    assert dev.interrupt() == 130, dev.err
    assert _specs(ns) == (dep_before, svc_before)
    assert not core.list_namespaced_service(ns, label_selector="devloop.dev/relay").items

    # devloop killed: `devloop delete` undoes the relay too (selectors back, relay objects gone)
    dev = Dev(directory, "--local", "api", "--intercept-header", "x-dev=alice")
    dev.wait_for("intercept_started", timeout=300)
    dev.proc.kill()
    dev.proc.wait(30)
    dev.close()
    assert apps.list_namespaced_deployment(ns, label_selector="devloop.dev/relay").items
    gone = subprocess.run(
        [sys.executable, "-m", "devloop", "-C", str(directory), "delete"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gone.returncode == 0, gone.stderr
    assert not apps.list_namespaced_deployment(ns, label_selector="devloop.dev/relay").items
    assert not core.list_namespaced_service(ns, label_selector="devloop.dev/relay").items


def test_print_env_reads_config_maps_and_secrets_from_the_cluster(
    kube_api: KubeApi,
    kube_namespace: str,
    tmp_path: Path,
    devloop_project: Callable[[Files], DevloopProject],
) -> None:
    config_path = kube_api.server.write_kubeconfig(tmp_path / "kubeconfig", CONTEXT)
    with kubeconfig.new_client_from_config(str(config_path), context=CONTEXT) as api:
        core = k8s.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": kube_namespace}})
        core.create_namespaced_config_map(
            kube_namespace, {"metadata": {"name": "shared"}, "data": {"REGION": "eu-1"}}
        )
        core.create_namespaced_secret(
            kube_namespace, {"metadata": {"name": "db"}, "stringData": {"PASSWORD": "s3cret"}}
        )
    files: Files = {
        "devloop.yaml": f"""
            name: i18penv
            kubernetes: {{context: {CONTEXT}, namespace: {kube_namespace},
                         allowed_contexts: [{CONTEXT}]}}
            services:
              api: {{image: i18/api, manifests: [api.yaml.j2]}}
        """,
        "api.yaml.j2": """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: api}
            spec:
              selector: {matchLabels: {app: api}}
              template:
                metadata: {labels: {app: api}}
                spec:
                  containers:
                    - name: api
                      image: {{ image }}
                      envFrom: [{configMapRef: {name: shared}}]
                      env:
                        - name: PASSWORD
                          valueFrom: {secretKeyRef: {name: db, key: PASSWORD}}
        """,
        "Dockerfile": "FROM scratch\n",
    }
    proj = devloop_project(files)
    env = {"KUBECONFIG": str(config_path)}
    result = proj.run("dev", "--local", "api", "--print-env", env=env)
    assert result.code == 0, result.err
    assert "export REGION=eu-1" in result.out.splitlines()
    assert "export PASSWORD='********'" in result.out.splitlines()
    shown = proj.run("dev", "--local", "api", "--print-env", "--show-secrets", env=env)
    assert "export PASSWORD=s3cret" in shown.out.splitlines()
