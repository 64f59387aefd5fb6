"""An image's inputs are the context files its Dockerfile can reach: only those change its tag
and only those rebuild it (issue 12, item 1)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devloop import config
from devloop.build import digest
from devloop.build.inputs import image_inputs
from devloop.files.ignore import PathRules
from devloop.loop.plan import plan
from devloop.model.changes import Change
from devloop.model.project import Project

YAML = """
name: i12-shared
target: docker
services:
  web:
    image: i12/web
    context: .
    dockerfile: web.Dockerfile
    sync:
      - {src: "web/**/*.py", dest: /app/web}
  api:
    image: i12/api
    context: .
    dockerfile: api/Dockerfile
    sync:
      - {src: "api/src/**", dest: /srv/src}
  tool:
    image: i12/tool
    context: .
    builder: {command: "true"}
"""

FILES = {
    "web.Dockerfile": (
        "FROM devloop/python:3\nWORKDIR /app\nCOPY web/ web/\nCOPY requirements*.txt ./\n"
    ),
    "api/Dockerfile": (
        "FROM devloop/debian:bookworm AS build\n"
        "ARG SRC=api/src\n"
        "COPY ${SRC} /build/src\n"
        "COPY shared/gen.sh /build/\n"
        "RUN sh /build/gen.sh\n"
        "FROM build AS unused\n"
        "COPY web/ /nope/\n"
        "FROM devloop/debian:bookworm\n"
        "COPY --from=build /build /srv\n"
        "COPY api/config.ini /etc/api.ini\n"
    ),
    "web/app.py": "print('web')\n",
    "web/templates/index.html": "<p>hi</p>\n",
    "requirements.txt": "flask\n",
    "api/src/main.go": "package main\n",
    "api/config.ini": "[api]\n",
    "shared/gen.sh": "echo gen\n",
    "README.md": "# readme\n",
    ".dockerignore": "**/*.log\n",
}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "devloop.yaml").write_text(YAML)
    for rel, text in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return config.load(tmp_path)


def test_inputs_follow_stages_args_and_copy_from(project: Project) -> None:
    web = image_inputs(project.services["web"])
    assert web.patterns == ("web", "requirements*.txt")
    api = image_inputs(project.services["api"])
    # the unused stage's `COPY web/` does not feed the target
    assert api.patterns == ("api/src", "shared/gen.sh", "api/config.ini")
    assert api.reaches("api/src/pkg/x.go") and api.reaches("shared/gen.sh")
    assert not api.reaches("web/app.py") and not api.reaches("README.md")
    assert web.reaches("requirements-dev.txt") and not web.reaches("api/config.ini")
    tool = image_inputs(project.services["tool"])
    assert tool.whole and tool.reaches("README.md")


def _touch(root: Path, rel: str, text: str) -> None:
    (root / rel).write_text(text)
    digest.CACHE.clear()


def test_tag_changes_only_with_reachable_files(project: Project) -> None:
    root = project.root
    before = digest.image_refs(project, ["web", "api"])
    _touch(root, "README.md", "# changed\n")
    (root / "notes.log").write_text("shell output\n")
    assert digest.image_refs(project, ["web", "api"]) == before
    _touch(root, "api/config.ini", "[api]\nx=1\n")
    after = digest.image_refs(project, ["web", "api"])
    assert after["web"] == before["web"]
    assert after["api"] != before["api"]
    _touch(root, "requirements.txt", "flask\nrequests\n")
    assert digest.image_refs(project, ["web"])["web"] != before["web"]


def test_plan_rebuilds_only_the_service_a_change_reaches(project: Project) -> None:
    from devloop.build.inputs import cached_inputs

    names = ("web", "api")
    inputs = {n: cached_inputs(project.services[n]) for n in names}

    def decide(*rels: str) -> set[str]:
        batch = [Change("modified", project.root / r) for r in rels]
        p = plan(project, names, batch, PathRules(project, names), inputs)
        return {f"{s.name} {'rebuild' if s.rebuild else 'sync'}" for s in p.services}

    assert decide("web/app.py") == {"web sync"}  # api never rebuilds for web's synced file
    assert decide("README.md") == set()
    assert decide("web/templates/index.html") == {"web rebuild"}
    assert decide("api/config.ini") == {"api rebuild"}
    assert decide("shared/gen.sh") == {"api rebuild"}
    assert decide("api/src/main.go") == {"api sync"}
    assert decide("api/Dockerfile") == {"api rebuild"}


def test_dockerfile_edit_changes_the_inputs(project: Project) -> None:
    from devloop.build.inputs import cached_inputs

    svc = project.services["web"]
    assert not cached_inputs(svc).reaches("README.md")
    time.sleep(0.01)
    (project.root / "web.Dockerfile").write_text("FROM devloop/python:3\nCOPY . /app\n")
    assert cached_inputs(svc).reaches("README.md")


def test_plan_shows_the_input_set_per_image(project: Project) -> None:
    import json
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "devloop", "-C", str(project.root), "--output", "json", "plan"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    inputs = json.loads(res.stdout)["inputs"]
    assert inputs["web"]["globs"] == ["web", "requirements*.txt"]
    assert inputs["web"]["files"] == 3  # web/app.py, web/templates/index.html, requirements.txt
    assert inputs["api"]["files"] == 3
    assert inputs["tool"]["whole_context"]
    text = subprocess.run(
        [sys.executable, "-m", "devloop", "-C", str(project.root), "plan"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "web: 3 file(s)" in text and "web, requirements*.txt" in text
