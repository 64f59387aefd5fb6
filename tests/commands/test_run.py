"""`devloop run` and `devloop delete` on the Docker engine, and working on a subset of services."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests import event_schema
from tests.devproc import DevProcess, free_port, http_get

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HTTPD = """\
FROM devloop/busybox:latest
COPY site /www
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""
CRASH = """\
FROM devloop/busybox:latest
CMD ["sh", "-c", "echo 'fatal: cannot open /etc/app.conf'; exit 7"]
"""
WORKER = """\
FROM devloop/busybox:latest
CMD ["sh", "-c", "while true; do sleep 1; done"]
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _devloop(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "devloop", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    event_schema.check_stream(done.stdout)
    return done


@pytest.fixture
def name(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    project = f"rt{uuid.uuid4().hex[:8]}"
    yield project
    for c in docker_client.containers.list(
        all=True, filters={"label": f"app.kubernetes.io/part-of={project}"}
    ):
        c.remove(force=True)
    for n in docker_client.networks.list(filters={"label": f"app.kubernetes.io/part-of={project}"}):
        n.remove()
    for img in docker_client.images.list(name=f"devloop-test-run/{project}-*"):
        docker_client.images.remove(img.id, force=True)


def _config(name: str, port: int, services: str) -> str:
    return f"name: {name}\nservices:\n{services.format(name=name, port=port)}"


WEB = """\
  web:
    image: devloop-test-run/{name}-web
    context: web
    archetype: web
    ports: ["{port}:8080"]
"""


def test_run_deploys_waits_and_prints_urls(
    tmp_path: Path, name: str, docker_client: docker.DockerClient
) -> None:
    port = free_port()
    _write(
        tmp_path,
        {
            "devloop.yaml": _config(name, port, WEB),
            "web/Dockerfile": HTTPD,
            "web/site/index.html": "hello from run\n",
        },
    )
    result = _devloop(tmp_path, "--output", "json", "run")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    ready = [e for e in events if e["event"] == "ready"]
    assert ready and ready[0]["urls"] == [f"http://127.0.0.1:{port}"]
    assert http_get(f"http://127.0.0.1:{port}/index.html") == (200, "hello from run\n")
    # the second run builds nothing: the content tag already exists
    again = _devloop(tmp_path, "--output", "json", "run")
    assert again.returncode == 0, again.stderr
    kinds = [json.loads(line)["event"] for line in again.stdout.splitlines()]
    assert "build_skipped" in kinds and "build_started" not in kinds
    # delete removes what devloop made, and only that
    other = docker_client.containers.run(
        "devloop/busybox:latest",
        ["sleep", "300"],
        detach=True,
        labels={
            "app.kubernetes.io/part-of": f"{name}-other",
            "app.kubernetes.io/managed-by": "devloop",
        },
    )
    try:
        deleted = _devloop(tmp_path, "delete")
        assert deleted.returncode == 0, deleted.stderr
        assert (
            docker_client.containers.list(
                all=True, filters={"label": f"app.kubernetes.io/part-of={name}"}
            )
            == []
        )
        other.reload()
        assert other.status == "running"
    finally:
        other.remove(force=True)


def test_run_reports_a_crashing_service(tmp_path: Path, name: str) -> None:
    services = (
        WEB
        + """\
  broken:
    image: devloop-test-run/{name}-broken
    context: broken
    archetype: worker
"""
    )
    _write(
        tmp_path,
        {
            "devloop.yaml": _config(name, free_port(), services),
            "web/Dockerfile": HTTPD,
            "web/site/index.html": "ok\n",
            "broken/Dockerfile": CRASH,
        },
    )
    result = _devloop(tmp_path, "run", "--timeout", "60")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "broken" in result.stderr
    assert "fatal: cannot open /etc/app.conf" in result.stderr
    assert result.stderr.startswith("error: ") or "\nerror: " in result.stderr


def test_dev_on_a_subset_builds_only_it_and_its_requirements(
    tmp_path: Path, name: str, docker_client: docker.DockerClient
) -> None:
    services = (
        WEB
        + """\
  other:
    image: devloop-test-run/{name}-other
    context: other
    archetype: worker
"""
    )
    _write(
        tmp_path,
        {
            "devloop.yaml": _config(name, free_port(), services),
            "web/Dockerfile": HTTPD,
            "web/site/index.html": "ok\n",
            "other/Dockerfile": WORKER,
        },
    )
    dev = DevProcess(tmp_path, "web")
    try:
        dev.wait_event("ready", service="web", timeout=180)
        built = {
            e["service"] for e in dev.events if e["event"] in ("build_started", "build_skipped")
        }
        assert built == {"web"}
        running = docker_client.containers.list(
            filters={"label": f"app.kubernetes.io/part-of={name}"}
        )
        assert {c.labels["devloop.dev/service"] for c in running} == {"web"}
    finally:
        # SIGTERM cleans up like Ctrl-C
        dev.proc.send_signal(signal.SIGTERM)
        assert dev.wait(60) in (0, 130, 143)
    assert (
        docker_client.containers.list(
            all=True, filters={"label": f"app.kubernetes.io/part-of={name}"}
        )
        == []
    )


def test_a_build_only_service_is_neither_deployed_nor_ready(tmp_path: Path, name: str) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app/Dockerfile").write_text('FROM devloop/busybox:latest\nCMD ["sleep", "600"]\n')
    (tmp_path / "base.yaml.j2").write_text("# an image the others build from: nothing to run\n")
    services = """\
  base: {{image: devloop-test-run/{name}-base, context: app, manifests: [base.yaml.j2]}}
  work: {{image: devloop-test-run/{name}-work, context: app, archetype: worker}}
"""
    (tmp_path / "devloop.yaml").write_text(_config(name, 0, services))
    done = _devloop(tmp_path, "--output", "json", "run", timeout=300)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    said = {(e["event"], e.get("service")) for e in events}
    assert ("build_done", "base") in said or ("build_skipped", "base") in said
    assert ("ready", "work") in said
    assert ("deploy", "base") not in said and ("ready", "base") not in said


def test_a_template_error_stops_run_before_any_build(
    tmp_path: Path, name: str, docker_client: docker.DockerClient
) -> None:
    _write(
        tmp_path,
        {
            "devloop.yaml": f"name: {name}\nservices:\n  web:\n"
            f"    image: devloop-test-run/{name}-web\n    context: web\n"
            "    manifests: [k8s/web.yaml.j2]\n",
            "web/Dockerfile": HTTPD,
            "web/site/index.html": "x\n",
            "k8s/web.yaml.j2": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n"
            "data: {a: '{{ values.nope }}'}\n",
        },
    )
    result = _devloop(tmp_path, "run", "--timeout", "30")
    assert result.returncode == 2, result.stderr
    assert "k8s/web.yaml.j2:4: undefined value" in result.stderr
    assert docker_client.images.list(name=f"devloop-test-run/{name}-web") == []
