"""The samples and the root devloop.yaml: they render valid manifests for every profile, their
sync rules match real files, and the two-service example runs and answers end to end."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from devloop import config
from devloop.watch.survey import survey
from tests.project_fixture import DevloopProject

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGES = ("devloop/debian:bookworm", "devloop/python:3", "devloop/node:18")
ROOT_CONFIG: dict[str, Any] = yaml.safe_load((ROOT / "devloop.yaml").read_text(encoding="utf-8"))
PROFILES = sorted(ROOT_CONFIG.get("profiles") or {})


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_root_config_renders_valid_manifests_for_every_profile(
    devloop_project: Any, profile: str | None
) -> None:
    proj: DevloopProject = devloop_project({})
    result = proj.run(
        "-C",
        str(ROOT),
        "render",
        "--validate",
        *(["-p", profile] if profile else []),
        chdir_flag=False,
    )
    assert result.code == 0, result.err
    docs = [d for d in yaml.safe_load_all(result.out) if d]
    deployed = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert deployed == {"hello", "python-web", "node-web", "api", "frontend"}  # base is only built
    replicas = ((ROOT_CONFIG["profiles"][profile].get("values") or {}) if profile else {}).get(
        "replicas", ROOT_CONFIG["values"]["replicas"]
    )
    assert {d["spec"]["replicas"] for d in docs if d["kind"] == "Deployment"} == {replicas}


def test_every_sample_sync_rule_matches_files_and_nothing_warns() -> None:
    project = config.load(ROOT)
    s = survey(project, project.services)
    assert s.warnings == ()
    for svc in s.services:
        for rule in svc.sync:
            assert rule.files > 0, f"{svc.name}: {rule.src} matches nothing"
    python_web = next(x for x in s.services if x.name == "python-web")
    assert "requirements.txt" in python_web.rebuild_examples  # it rebuilds, never syncs


@pytest.fixture(scope="session")
def base_images(docker_client: docker.DockerClient) -> tuple[str, ...]:
    """devloop/python:3 and devloop/node:18, built from Debian packages when missing (a few minutes
    once)."""
    run = subprocess.run(
        ["bash", str(ROOT / "samples/base-images/build.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for image in BASE_IMAGES:
        docker_client.images.get(image)
    return BASE_IMAGES


@pytest.mark.docker
def test_base_image_script_skips_images_that_exist(base_images: tuple[str, ...]) -> None:
    again = subprocess.run(
        ["bash", str(ROOT / "samples/base-images/build.sh")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def shop(
    tmp_path: Path, docker_client: docker.DockerClient, base_images: tuple[str, ...]
) -> Iterator[Path]:
    """The root devloop.yaml's two-service example (base, api, frontend) in a tmpdir, under a unique
    project name, image prefix and local port, so that it runs beside anything else."""
    name = f"devloop-test-samples-{uuid.uuid4().hex[:8]}"
    shutil.copytree(ROOT / "samples" / "shop", tmp_path / "samples" / "shop")
    services = {n: dict(ROOT_CONFIG["services"][n]) for n in ("base", "api", "frontend")}
    for svc in services.values():
        svc["image"] = svc["image"].replace("devloop-samples/", f"{name}/")
    services["frontend"]["ports"] = [f"{_free_port()}:8080"]
    (tmp_path / "devloop.yaml").write_text(yaml.safe_dump({"name": name, "services": services}))
    yield tmp_path
    devloop(tmp_path, "delete")
    for image in docker_client.images.list():
        for ref in image.tags:
            if ref.startswith(f"{name}/"):
                docker_client.images.remove(ref, force=True)
    left = docker_client.containers.list(
        all=True, filters={"label": f"app.kubernetes.io/part-of={name}"}
    )
    assert not left, f"left behind: {[c.name for c in left]}"


def devloop(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devloop", "-C", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.docker
@pytest.mark.slow
def test_two_service_example_runs_and_the_frontend_answers_through_the_api(shop: Path) -> None:
    run = devloop(shop, "--output", "json", "run", "--timeout", "180")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    deployed = {e["service"]: e["objects"] for e in events if e["event"] == "deploy"}
    # base is an image, not a workload: neither deployed nor ready
    assert deployed == {"api": 2, "frontend": 2}
    assert not [e for e in events if e["event"] == "ready" and e["service"] == "base"]
    (urls,) = [e["urls"] for e in events if e["event"] == "ready" and e["service"] == "frontend"]
    with urllib.request.urlopen(urls[0] + "/", timeout=30) as r:
        body = json.loads(r.read())
    assert body["service"] == "frontend"
    assert body["api"]["service"] == "api"  # reached as http://api:8000/, its Service name
    assert [i["sku"] for i in body["api"]["items"]] == ["mug", "tee"]


def complete(words: str, cword: int) -> list[str]:
    """What bash completion offers for `words` (click's protocol: one 'type,value' per line)."""
    env = {
        "_DEVLOOP_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-m", "devloop"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    return [line.split(",", 1)[1] for line in out.stdout.splitlines() if line]


def test_shell_completion_offers_service_and_profile_names_from_devloop_yaml(
    tmp_path: Path,
) -> None:
    assert complete("devloop dev ", 2) == [
        "hello",
        "python-web",
        "node-web",
        "base",
        "api",
        "frontend",
    ]
    assert complete("devloop run hello p", 3) == ["python-web"]
    assert complete("devloop plan -p ", 3) == PROFILES
    assert (
        complete(f"devloop -C {tmp_path} dev ", 4) == []
    )  # no devloop.yaml there: nothing, no error
