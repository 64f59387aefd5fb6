"""`devloop plan` and `devloop dev --plan`: what would be watched, ignored, synced and rebuilt."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devloop.watch import survey
from tests.project_fixture import DevloopProject, Files

Make = Callable[[Files], DevloopProject]

CONFIG = """
    name: planned
    services:
      web:
        image: planned/web
        context: web
        ports: ["8080:8080"]
        sync:
          - {src: "site/**", dest: /www}
          - {src: "assets/*.css", dest: /www/css}
      worker:
        image: planned/worker
        context: worker
        requires: [web]
"""


def files() -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {
        "devloop.yaml": CONFIG,
        "web/Dockerfile": "FROM devloop/busybox\nCOPY site /www\n",
        "web/.dockerignore": "data\n",
        "web/site/index.html": "<h1>hi</h1>\n",
        "web/site/about.html": "about\n",
        "web/app.cfg": "x=1\n",
        "worker/Dockerfile": "FROM devloop/busybox\n",
        "worker/run.sh": "echo\n",
    }
    out.update({f"web/data/blob{i}.bin": b"x" * 1000 for i in range(30)})
    out.update({f"web/node_modules/pkg/f{i}.js": "" for i in range(3)})
    return out


def plan_json(proj: DevloopProject, *args: str) -> dict[str, Any]:
    result = proj.run("plan", "--output", "json", *args)
    assert result.code == 0, result.err
    data: dict[str, Any] = json.loads(result.out)
    return data


def test_text_plan_names_watch_ignore_sync_rebuild_and_warnings(devloop_project: Make) -> None:
    proj = devloop_project(files())
    result = proj.run("plan")
    assert result.code == 0, result.err
    out = result.out
    assert "plan for planned: nothing is started" in out
    assert "  web/data: 30 files, 29.3 KB" in out  # the largest ignored tree first
    assert "  web/node_modules: 3 files" in out
    assert "  sync site/** -> /www: 2 file(s) now" in out
    assert "  sync assets/*.css -> /www/css: 0 file(s) now" in out
    assert (
        "rebuild on a change to any of 2 other file(s): .dockerignore, app.cfg, or the Dockerfile"
        in out
    )
    assert "  rebuild when web is rebuilt (its image is a build arg)" in out
    assert "  ! web: sync rule 'assets/*.css' matches no file now" in out
    assert "  ! worker: no .dockerignore in worker" in out
    assert "web: no .dockerignore" not in out
    assert "inotify: " in out and " watches needed, limit " in out


def test_json_plan_is_one_object_with_the_same_numbers(devloop_project: Make) -> None:
    proj = devloop_project(files())
    data = plan_json(proj)
    web, worker = data["services"]
    assert (web["name"], worker["name"]) == ("web", "worker")
    assert [(r["src"], r["files"]) for r in web["sync"]] == [("site/**", 2), ("assets/*.css", 0)]
    # what the daemon is sent: data/ is dockerignored, node_modules is not (only never watched)
    assert web["context_files"] == 8
    assert web["rebuild_files"] == 2 and worker["requires"] == ["web"]
    assert [t["path"] for t in data["ignored"]] == ["web/data", "web/node_modules"]
    # one watch per directory: the root, web, web/site, worker (data and node_modules cost none)
    assert data["watches_needed"] == data["watched_dirs"] == 4
    assert data["watches_limit"] == survey.inotify_limit()
    assert data["watched_files"] == 8  # devloop.yaml, 3 in web, 2 in web/site, 2 in worker


def test_selected_services_bring_what_they_require(devloop_project: Make) -> None:
    proj = devloop_project(files())
    assert [s["name"] for s in plan_json(proj, "web")["services"]] == ["web"]
    assert [s["name"] for s in plan_json(proj, "worker")["services"]] == ["web", "worker"]
    result = proj.run("plan", "nope")
    assert result.code == 2 and "unknown service(s) nope" in result.err


def test_dev_plan_prints_the_plan_and_starts_nothing(devloop_project: Make) -> None:
    proj = devloop_project(files())
    # no Docker engine is needed: anything that tried to reach one would fail here
    result = proj.run("dev", "--plan", env={"DOCKER_HOST": "tcp://127.0.0.1:9"})
    assert result.code == 0, result.err
    assert result.out == proj.run("plan").out


def test_huge_context_and_inotify_limit_warnings(
    devloop_project: Make, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    proj = devloop_project(files())
    monkeypatch.setattr(survey, "HUGE_FILES", 4)
    limit = tmp_path / "max_user_watches"
    limit.write_text("3\n")
    monkeypatch.setattr(survey, "INOTIFY_LIMIT", limit)
    warnings = plan_json(proj)["warnings"]
    assert any(w.startswith("web: the build context web is huge (8 files") for w in warnings)
    assert (
        "needs 4 inotify watches, the limit is 3: raise it with "
        "`sudo sysctl fs.inotify.max_user_watches=524288`" in warnings
    )


def test_plan_shows_where_a_rule_puts_files_and_leaves_out_rebuild_and_ignore(
    devloop_project: Make,
) -> None:
    """A rule translated from Skaffold (whole path kept) shows where its files land; files a
    rule ignores or the service rebuilds on are not counted as synced."""
    config = """
    name: planned
    services:
      web:
        image: planned/web
        context: web
        rebuild: [backend/requirements.txt]
        sync:
          - {src: "backend/*.py", dest: /app}
          - {src: "backend/*.py", dest: /app, strip: ""}
          - {src: "backend/*", dest: /srv, ignore: ["backend/*.py"]}
    """
    proj = devloop_project(
        {
            "devloop.yaml": config,
            "web/Dockerfile": "FROM devloop/busybox\nCOPY backend /app\n",
            "web/backend/app.py": "",
            "web/backend/requirements.txt": "",
        }
    )
    result = proj.run("plan")
    assert result.code == 0, result.err
    assert "backend/*.py -> /app: 1 file(s) now (e.g. backend/app.py -> /app/app.py)" in (
        result.out
    )
    assert "(e.g. backend/app.py -> /app/backend/app.py)" in result.out
    assert "backend/* -> /srv: 0 file(s) now" in result.out
    assert "backend/requirements.txt" in result.out.split("rebuild on a change")[1]
