"""`devloop doctor` against the running engine and registry, and against ones that are not there."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from tests.project_fixture import DevloopProject, Files

Make = Callable[[Files], DevloopProject]
PREFIX = "devloop-test-doctor"


@pytest.fixture
def doctor_project(
    devloop_project: Make, docker_client: docker.DockerClient, base_image: str
) -> Iterator[Callable[[str], DevloopProject]]:
    """A project with a busybox service (has sh, tar, dd) and a FROM-scratch one (has none)."""
    tag = uuid.uuid4().hex[:8]
    name = f"{PREFIX}-{tag}"

    def make(extra: str = "") -> DevloopProject:
        return devloop_project(
            {
                "devloop.yaml": f"""
                name: {name}
                {extra}
                services:
                  shell:
                    image: {name}/shell
                    context: shell
                    sync: [{{src: "*.txt", dest: /data}}]
                  bare:
                    image: {name}/bare
                    context: bare
                    sync: [{{src: "*.txt", dest: /data}}]
                  quiet:
                    image: {name}/quiet
                    context: bare
            """,
                "shell/Dockerfile": f"FROM {base_image}\nCOPY a.txt /data/\n",
                "shell/a.txt": "a\n",
                "bare/Dockerfile": 'FROM scratch\nCOPY a.txt /data/\nCMD ["/nothing"]\n',
                "bare/a.txt": "a\n",
            }
        )

    yield make
    for image in docker_client.images.list():
        for ref in image.tags:
            if name in ref:
                docker_client.images.remove(ref, force=True)
    leftovers = docker_client.containers.list(
        all=True, filters={"label": f"app.kubernetes.io/part-of={name}"}
    )
    assert not leftovers, f"doctor left containers behind: {[c.name for c in leftovers]}"


@pytest.mark.docker
def test_running_engine_checks_images_for_the_sync_agent_tools(
    doctor_project: Callable[[str], DevloopProject],
) -> None:
    proj = doctor_project("")
    result = proj.run("doctor")
    out = result.out
    assert result.code == 1, out  # the FROM-scratch image is broken for syncing
    assert "✓ docker engine: Docker Engine " in out
    assert "- kubernetes: no kube context configured or current" in out
    assert "- registry: no registry configured" in out
    assert "✓ inotify: " in out and " watches needed, limit " in out
    assert "✓ image shell: " in out and "/shell:" in out and " has " in out
    assert "✗ image bare: " in out and "lacks sh, tar or dd for the sync agent" in out
    assert "    fix: base the image on one with a shell, tar and dd" in out
    assert "- image quiet: no sync rules" in out
    assert out.endswith("1 problem(s) found\n")


@pytest.mark.docker
def test_registry_reachable_and_not(doctor_project: Callable[[str], DevloopProject]) -> None:
    up = doctor_project("registry: localhost:5000").run("--output", "json", "doctor")
    checks = {c["name"]: c for c in map(json.loads, up.out.splitlines())}
    assert checks["registry"]["status"] == "ok"
    assert checks["registry"]["detail"] == (
        "http://localhost:5000/v2/ answers; TLS: plain HTTP (insecure registry)"
    )
    assert checks["registry login"]["status"] == "ok"
    down = doctor_project("registry: 127.0.0.1:9").run("--output", "json", "doctor")
    checks = {c["name"]: c for c in map(json.loads, down.out.splitlines())}
    assert checks["registry"]["status"] == "fail"
    assert checks["registry"]["detail"] == "registry 127.0.0.1:9: connection refused"
    # a fix for the user's machine, not devloop's Makefile
    assert "docker run -d -p 9:5000" in checks["registry"]["fix"]
    assert "make" not in checks["registry"]["fix"]


@pytest.mark.parametrize("host", ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:9"])
def test_stopped_engine_is_reported_with_a_fix(devloop_project: Make, host: str) -> None:
    proj = devloop_project(
        {
            "devloop.yaml": """
            name: doc
            services:
              web: {image: doc/web, context: web, sync: [{src: "*", dest: /w}]}
        """,
            "web/Dockerfile": "FROM scratch\n",
        }
    )
    result = proj.run("doctor", env={"DOCKER_HOST": host})
    assert result.code == 1
    assert f"✗ docker engine: cannot reach {host}: " in result.out
    assert "    fix: start the engine: `sudo systemctl start docker`" in result.out
    assert "make services" not in result.out and ".ci/" not in result.out
    assert "- images: needs the Docker engine" in result.out
    assert "✓ devloop.yaml: project doc, 1 service(s)" in result.out


def test_unreachable_kube_context_fails_when_named_and_warns_when_only_current(
    devloop_project: Make, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "dead",
                "clusters": [{"name": "dead", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}}],
            }
        )
    )
    proj = devloop_project({})  # no devloop.yaml: only the machine is checked
    env = {"KUBECONFIG": str(kubeconfig), "DOCKER_HOST": "tcp://127.0.0.1:9"}
    current = proj.run("--output", "json", "doctor", env=env)
    checks = {c["name"]: c for c in map(json.loads, current.out.splitlines())}
    assert checks["devloop.yaml"]["status"] == "skip"
    assert checks["kubernetes"]["status"] == "warn"
    assert checks["kubernetes"]["detail"].startswith("context dead: API server not reachable: ")
    named = proj.run("doctor", "--context", "dead", env=env)
    assert "✗ kubernetes: context dead: API server not reachable" in named.out
    assert (
        "    fix: start the cluster or fix the context (`kubectl --context dead version`)"
        in named.out
    )


@pytest.mark.docker
def test_a_sync_dest_the_images_user_cannot_write_fails(
    devloop_project: Make, docker_client: docker.DockerClient, base_image: str
) -> None:
    name = f"{PREFIX}-{uuid.uuid4().hex[:8]}"
    proj = devloop_project(
        {
            "devloop.yaml": f"""
            name: {name}
            services:
              owned:
                image: {name}/owned
                context: owned
                sync: [{{src: "*.txt", dest: /data}}]
              rooted:
                image: {name}/rooted
                context: rooted
                sync: [{{src: "*.txt", dest: /data/new}}, {{src: "*.md", dest: /data}}]
            """,
            "owned/Dockerfile": f"FROM {base_image}\nCOPY --chown=65534 a.txt /data/\nUSER 65534\n",
            "owned/a.txt": "a\n",
            "rooted/Dockerfile": f"FROM {base_image}\nCOPY a.txt /data/sub/\nUSER 65534\n",
            "rooted/a.txt": "a\n",
        }
    )
    try:
        result = proj.run("--output", "json", "doctor")
        checks = {c["name"]: c for c in map(json.loads, result.out.splitlines())}
        assert checks["sync dest owned"]["status"] == "ok", checks
        assert "user 65534" in checks["sync dest owned"]["detail"]
        rooted = checks["sync dest rooted"]
        assert rooted["status"] == "fail", checks
        assert "user 65534" in rooted["detail"] and "/data" in rooted["detail"], rooted
        assert "/data/sub" in rooted["detail"], rooted
        assert "--chown" in rooted["fix"]
        assert result.code == 1
    finally:
        for image in docker_client.images.list():
            for ref in image.tags:
                if name in ref:
                    docker_client.images.remove(ref, force=True)
