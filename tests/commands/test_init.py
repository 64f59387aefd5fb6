"""`devloop init` on fixture trees: the devloop.yaml it writes, the rules it infers, what it
explains."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from devloop import config
from devloop.files.ignore import PathRules
from devloop.infer.dockerfile import parse
from devloop.loop.plan import plan
from devloop.model.changes import Change
from devloop.model.project import Project
from tests.project_fixture import DevloopProject, Files

ROOT = Path(__file__).resolve().parents[2]
Make = Callable[[Files], DevloopProject]


def init(proj: DevloopProject, *args: str) -> tuple[Project, str]:
    result = proj.run("init", *args)
    assert result.code == 0, result.err
    return config.load(proj.path), result.out


def outcome(project: Project, service: str, rel: str) -> str | tuple[str, ...]:
    """What a change to `rel` does: the container paths it syncs to, or 'rebuild'."""
    svc = project.services[service]
    p = plan(
        project,
        [service],
        [Change("modified", svc.context / rel)],
        PathRules(project, [service]),
    )
    sp = p.service(service)
    assert sp is not None, f"a change to {rel} does nothing"
    if sp.rebuild:
        return "rebuild"
    return tuple(f.dest for s in sp.syncs for f in s.copy)


def test_copy_dot_syncs_code_and_rebuilds_on_requirements(devloop_project: Make) -> None:
    proj = devloop_project(
        {
            "web/Dockerfile": """
            FROM devloop/python:3
            WORKDIR /app
            COPY requirements.txt .
            RUN pip install -r requirements.txt
            COPY . .
            EXPOSE 8000
            CMD ["python3", "main.py"]
        """,
            "web/requirements.txt": "flask\n",
            "web/main.py": "print(1)\n",
            "web/util.py": "",
            "web/pkg/mod.py": "",
            "web/static/site.css": "",
        }
    )
    project, out = init(proj)
    web = project.services["web"]
    assert web.archetype == "web" and [(p.local, p.container) for p in web.ports] == [(8000, 8000)]
    assert outcome(project, "web", "main.py") == ("/app/main.py",)
    assert outcome(project, "web", "pkg/mod.py") == ("/app/pkg/mod.py",)
    assert outcome(project, "web", "static/site.css") == ("/app/static/site.css",)
    assert outcome(project, "web", "requirements.txt") == "rebuild"
    assert all(r.then == "restart" for r in web.sync)
    assert "web: no sync for requirements.txt: a build input: RUN at line 4 follows its COPY" in out
    assert "(from web/Dockerfile:5 COPY . . in stage 0" in out
    assert "then restart because the image runs python3" in out


def test_multi_stage_follows_the_last_stage_by_default_and_target_when_given(
    devloop_project: Make,
) -> None:
    proj = devloop_project(
        {
            "svc/Dockerfile": """
            FROM devloop/busybox AS runtime
            COPY app/ /srv/app/
            EXPOSE 8080

            FROM runtime AS debug
            COPY tools/ /opt/tools/
        """,
            "svc/app/index.html": "",
            "svc/tools/dbg.sh": "",
        }
    )
    project, out = init(proj)
    assert outcome(project, "svc", "tools/dbg.sh") == ("/opt/tools/dbg.sh",)
    # the parent stage's files are in the last stage too
    assert outcome(project, "svc", "app/index.html") == ("/srv/app/index.html",)
    assert (
        "svc: sync app/** -> /srv/app (from svc/Dockerfile:2 COPY app/ /srv/app/ in stage "
        "'runtime')" in out
    )

    project, out = init(proj, "--target", "runtime", "--force")
    assert project.services["svc"].target == "runtime"
    assert outcome(project, "svc", "tools/dbg.sh") == "rebuild"
    assert outcome(project, "svc", "app/index.html") == ("/srv/app/index.html",)


def test_workdir_changes_map_relative_destinations(devloop_project: Make) -> None:
    proj = devloop_project(
        {
            "Dockerfile": """
            FROM devloop/busybox
            WORKDIR /srv
            COPY conf/ conf/
            WORKDIR app
            COPY src/ ./src/
            COPY *.sh ./
            WORKDIR /abs/../opt
            COPY lib lib
        """,
            "conf/a.ini": "",
            "src/main.sh": "",
            "run.sh": "",
            "lib/x.sh": "",
        }
    )
    project, _ = init(proj)
    (name,) = project.services
    assert outcome(project, name, "conf/a.ini") == ("/srv/conf/a.ini",)
    assert outcome(project, name, "src/main.sh") == ("/srv/app/src/main.sh",)
    assert outcome(project, name, "run.sh") == ("/srv/app/run.sh",)
    assert outcome(project, name, "lib/x.sh") == ("/opt/lib/x.sh",)
    assert project.services[name].archetype == "worker" and not project.services[name].ports


def test_copy_from_follows_files_back_to_the_context(devloop_project: Make) -> None:
    proj = devloop_project(
        {
            "api/Dockerfile": """
            FROM devloop/busybox AS builder
            WORKDIR /build
            COPY lib/ lib/
            COPY Makefile .
            RUN make out
            FROM devloop/busybox
            COPY --from=builder /build/lib /opt/lib
            COPY --from=builder /build/out /opt/out
            COPY --from=devloop/busybox /bin/busybox /bin/bb
        """,
            "api/lib/one.sh": "",
            "api/lib/deep/two.sh": "",
            "api/Makefile": "",
        }
    )
    project, out = init(proj)
    assert outcome(project, "api", "lib/deep/two.sh") == ("/opt/lib/deep/two.sh",)
    assert outcome(project, "api", "Makefile") == "rebuild"
    assert (
        "api: sync lib/** -> /opt/lib (from api/Dockerfile:7 COPY --from=builder /build/lib "
        "/opt/lib "
        "in stage 1 via stage 'builder')" in out
    )
    assert "no sync for /build/out: stage 'builder' did not copy it from the build context" in out
    assert "no sync for /bin/busybox: copied from image 'devloop/busybox'" in out


def test_json_form_flags_add_and_arg_substitution(devloop_project: Make) -> None:
    proj = devloop_project(
        {
            "w/Dockerfile": """
            # syntax=docker/dockerfile:1
            ARG BASE=devloop/busybox
            FROM ${BASE}
            ARG APP_DIR="/srv/my app"
            ENV CONF=/etc/w
            COPY --chown=1000:1000 --chmod=644 ["docs dir/", "${APP_DIR}/docs/"]
            ADD --chown=1 settings.ini $CONF/
            ADD https://example.com/tool.sh /usr/local/bin/
            ADD vendor.tar.gz /opt/
            COPY ${MISSING}/x /x/
            COPY --link \\
                 bin/ \\
                 # a comment inside the continuation
                 /usr/local/bin/
        """,
            "w/docs dir/a.md": "",
            "w/settings.ini": "",
            "w/vendor.tar.gz": "",
            "w/bin/tool": "",
        }
    )
    project, out = init(proj)
    assert outcome(project, "w", "docs dir/a.md") == ("/srv/my app/docs/a.md",)
    assert outcome(project, "w", "settings.ini") == ("/etc/w/settings.ini",)
    assert outcome(project, "w", "bin/tool") == ("/usr/local/bin/tool",)
    assert outcome(project, "w", "vendor.tar.gz") == "rebuild"
    assert "no sync for https://example.com/tool.sh: a URL" in out
    assert "no sync for vendor.tar.gz: an archive ADD unpacks" in out
    assert "no sync for ${MISSING}/x: uses $MISSING, which has no value here" in out


def test_never_overwrites_without_force(devloop_project: Make) -> None:
    proj = devloop_project(
        {"Dockerfile": "FROM devloop/busybox\nCOPY a /a\n", "a/f": "", "devloop.yaml": "# mine\n"}
    )
    result = proj.run("init")
    assert result.code == 1
    assert "not overwriting devloop.yaml: it exists already (use --force" in result.err
    assert (proj.path / "devloop.yaml").read_text() == "# mine\n"
    assert proj.run("init", "--force").code == 0
    assert "sync:" in (proj.path / "devloop.yaml").read_text()


def test_manifests_are_written_from_archetypes_and_render(devloop_project: Make) -> None:
    proj = devloop_project(
        {
            "web/Dockerfile": "FROM devloop/busybox\nEXPOSE 80\n",
            "worker/Dockerfile": "FROM devloop/busybox\n",
            "manifests/worker.yaml.j2": "# mine\n",
        }
    )
    assert proj.run("init", "--manifests").code == 1  # manifests/worker.yaml.j2 exists
    assert not (proj.path / "devloop.yaml").exists()
    project, out = init(proj, "--manifests", "--force")
    assert "wrote manifests/web.yaml.j2" in out
    assert project.services["web"].manifests == (proj.path / "manifests/web.yaml.j2",)
    rendered = proj.run("render")
    assert rendered.code == 0, rendered.err
    assert "kind: Service" in rendered.out and rendered.out.count("kind: Deployment") == 2


def test_discovery_skips_ignored_trees_and_names_services_uniquely(devloop_project: Make) -> None:
    proj = devloop_project(
        {
            "Dockerfile": "FROM devloop/busybox\nEXPOSE 8080\n",
            "app/Dockerfile": "FROM devloop/busybox\nEXPOSE 8080\n",
            "app/worker.Dockerfile": "FROM devloop/busybox\n",
            "node_modules/x/Dockerfile": "FROM devloop/busybox\n",
            ".git/Dockerfile": "FROM devloop/busybox\n",
            "vendor/Dockerfile": "FROM devloop/busybox\n",
            ".dockerignore": "vendor\n",
        }
    )
    project, _ = init(proj)
    assert sorted(project.services) == ["app", "app-worker", "proj"]
    ports = sorted(p.local for s in project.services.values() for p in s.ports)
    assert ports == [8080, 8081]  # two services EXPOSE 8080: the second gets the next local port
    assert project.services["app-worker"].dockerfile.name == "worker.Dockerfile"


def test_no_dockerfile_is_a_usage_error(devloop_project: Make) -> None:
    result = devloop_project({"README": ""}).run("init")
    assert result.code == 2 and "no Dockerfile found under" in result.err


def test_unknown_target_is_a_usage_error(devloop_project: Make) -> None:
    result = devloop_project({"Dockerfile": "FROM devloop/busybox AS a\n"}).run(
        "init", "--target", "b"
    )
    assert result.code == 2 and "has a stage named 'b'" in result.err


@pytest.mark.parametrize(
    ("sample", "service", "synced", "rebuilt"),
    [
        (
            "python-web",
            "python-web",
            ("app/greeting.py", "/app/app/greeting.py"),
            "requirements.txt",
        ),
        ("node-web", "node-web", ("src/greeting.js", "/app/src/greeting.js"), "package.json"),
    ],
)
def test_init_on_the_samples_infers_what_their_hand_written_rules_say(
    devloop_project: Make,
    sample: str,
    service: str,
    synced: tuple[str, str],
    rebuilt: str,
) -> None:
    proj = devloop_project({})
    shutil.copytree(ROOT / "samples" / sample, proj.path / sample)
    project, out = init(proj)
    assert outcome(project, service, synced[0]) == (synced[1],)
    assert outcome(project, service, rebuilt) == "rebuild"
    assert f"{service}: no sync for {rebuilt}: a build input" in out


def test_parser_handles_escape_directive_and_heredocs() -> None:
    df = parse(
        "# escape=`\n"
        "FROM devloop/busybox AS one\n"
        "RUN <<EOF\n"
        "FROM not-a-stage\n"
        "EOF\n"
        "COPY a `\n"
        "     /a/\n"
        "from scratch as Two\n"
    )
    assert [(s.name, s.base) for s in df.stages] == [("one", "devloop/busybox"), ("two", "scratch")]
    copy = df.stages[0].instructions[1]
    assert (copy.cmd, copy.args, copy.line) == ("COPY", "a /a/", 6)


def test_init_on_the_two_service_sample_infers_requires_from_the_base_image_arg(
    devloop_project: Make,
) -> None:
    proj = devloop_project({})
    shutil.copytree(ROOT / "samples" / "shop", proj.path / "shop")
    project, out = init(proj)
    assert project.services["api"].requires == ("base",)
    assert project.services["frontend"].requires == ("base",)
    assert "api: requires base: it starts FROM ${BASE_IMAGE}" in out
    assert outcome(project, "api", "api.py") == ("/app/api.py",)


def test_init_writes_the_editor_schema_its_modeline_points_at(devloop_project: Make) -> None:
    proj = devloop_project({"web/Dockerfile": "FROM devloop/busybox\nCOPY . /app\n"})
    _, out = init(proj)
    assert "wrote .devloop.schema.json" in out
    first = (proj.path / "devloop.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=.devloop.schema.json"
    written = json.loads((proj.path / ".devloop.schema.json").read_text())
    assert written == json.loads(proj.run("schema").out)
    # devloop's own file: a second init (with --force for devloop.yaml) rewrites it
    assert proj.run("init", "--force").code == 0


def test_a_dockerfile_in_a_subfolder_builds_from_where_its_copy_sources_are(
    devloop_project: Make,
) -> None:
    proj = devloop_project(
        {
            "deploy/web.dockerfile": """
            FROM devloop/python:3
            WORKDIR /app
            COPY requirements.txt .
            RUN pip install -r requirements.txt
            COPY app/ ./app/
            EXPOSE 8000
            CMD ["python3", "-m", "app"]
        """,
            "requirements.txt": "",
            "app/__main__.py": "",
        }
    )
    project, out = init(proj)
    web = project.services["web"]
    assert web.context == proj.path.resolve()
    assert web.dockerfile == (proj.path / "deploy/web.dockerfile").resolve()
    assert outcome(project, "web", "app/__main__.py") == ("/app/app/__main__.py",)
    assert outcome(project, "web", "requirements.txt") == "rebuild"
    assert "web: build context .: its COPY sources are there, not in deploy/" in out


def test_a_directory_or_glob_a_run_reads_right_after_its_copy_is_a_build_input(
    devloop_project: Make,
) -> None:
    proj = devloop_project(
        {
            "Dockerfile": """
            FROM devloop/python:3
            WORKDIR /app
            COPY wheels/ /tmp/wheels/
            RUN pip install --no-index /tmp/wheels/*
            COPY *.deb /tmp/
            RUN dpkg -i /tmp/*.deb
            COPY static/ ./static/
            RUN chown -R 1000 static
            COPY src/ ./src/
            CMD ["python3", "-m", "src"]
        """,
            "wheels/a-1.0-py3-none-any.whl": "",
            "tool.deb": "",
            "static/site.css": "",
            "src/__main__.py": "",
        }
    )
    project, out = init(proj)
    name = next(iter(project.services))
    assert outcome(project, name, "wheels/a-1.0-py3-none-any.whl") == "rebuild"
    assert outcome(project, name, "tool.deb") == "rebuild"
    assert outcome(project, name, "static/site.css") == ("/app/static/site.css",)  # chown only
    assert outcome(project, name, "src/__main__.py") == ("/app/src/__main__.py",)
    assert f"{name}: no sync for wheels: a build input: RUN at line 4 reads what it copied" in out
    assert f"{name}: no sync for *.deb: a build input: RUN at line 6 reads what it copied" in out


def test_files_a_build_stage_runs_through_are_build_inputs_of_the_final_stage(
    devloop_project: Make,
) -> None:
    proj = devloop_project(
        {
            "Dockerfile": """
            FROM devloop/busybox AS gen
            WORKDIR /src
            COPY tools/ ./tools/
            RUN sh tools/gen.sh > tools/out.txt
            COPY site/ ./site/
            FROM devloop/busybox
            COPY --from=gen /src/tools /opt/tools
            COPY --from=gen /src/site /www
        """,
            "tools/gen.sh": "echo hi\n",
            "site/index.html": "",
        }
    )
    project, out = init(proj)
    assert outcome(project, next(iter(project.services)), "tools/gen.sh") == "rebuild"
    assert outcome(project, next(iter(project.services)), "site/index.html") == ("/www/index.html",)
    assert ": no sync for tools: a build input: RUN at line 4 reads what it copied" in out


def test_a_base_only_image_is_built_not_deployed(devloop_project: Make) -> None:
    proj = devloop_project(
        {
            "base/Dockerfile": """
            FROM devloop/python:3
            COPY lib/ /opt/lib/
        """,
            "base/lib/common.py": "",
            "api/Dockerfile": """
            ARG BASE_IMAGE
            FROM ${BASE_IMAGE}
            COPY app.py /app/
            EXPOSE 8000
            CMD ["python3", "/app/app.py"]
        """,
            "api/app.py": "",
        }
    )
    project, out = init(proj)
    assert project.services["base"].archetype == "image"
    assert project.services["api"].requires == ("base",)
    assert "base: not deployed (archetype image)" in out
    render = proj.run("render")
    assert render.code == 0, render.err
    assert "name: base" not in render.out and "name: api" in render.out


def test_line_numbers_in_explanations_skip_the_comments_above(devloop_project: Make) -> None:
    proj = devloop_project(
        {
            "Dockerfile": """
            FROM devloop/busybox
            # the site
            # (two comment lines)
            COPY site/ /www/
        """,
            "site/index.html": "",
        }
    )
    _, out = init(proj)
    assert "(from Dockerfile:4 COPY site/ /www/ in stage 0" in out


def test_a_process_with_its_own_reloader_gets_no_restart(devloop_project: Make) -> None:
    proj = devloop_project(
        {
            "flask/Dockerfile": """
            FROM devloop/python:3
            COPY app/ /srv/app/
            ENV FLASK_APP=app.main FLASK_DEBUG=1
            CMD ["flask", "run", "--host", "0.0.0.0"]
        """,
            "flask/app/main.py": "",
            "plain/Dockerfile": """
            FROM devloop/python:3
            COPY app/ /srv/app/
            CMD ["flask", "run", "--host", "0.0.0.0"]
        """,
            "plain/app/main.py": "",
        }
    )
    project, _ = init(proj)
    assert {r.then for r in project.services["flask"].sync} == {"none"}
    assert {r.then for r in project.services["plain"].sync} == {"restart"}
