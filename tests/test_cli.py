"""The command line itself: --version, -C, usage errors, `devloop schema`, the error boundary."""

from __future__ import annotations

import json
import os
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import yaml

from devloop import __version__
from devloop.commands import render as render_command

if TYPE_CHECKING:  # imported by pytest as a plugin, so that its asserts are rewritten
    from tests.project_fixture import DevloopProject, Files

    Make = Callable[[Files], DevloopProject]


ROOT = Path(__file__).resolve().parent.parent
GOOD = """\
    name: shop
    target: kubernetes
    kubernetes: {context: kind-dev, namespace: shop-dev, rollout_timeout: 60}
    registry: localhost:5000
    values: {replicas: 1}
    x-defaults: &defaults
      context: app
    services:
      web:
        <<: *defaults
        image: shop/web
        build_args: {MODE: dev, DEBUG: true}
        ports: ["8080:80", 9090]
        env: {WORKERS: 2}
        sync:
          - {src: "app/**/*.py", dest: /app, then: restart}
          - src: "static/**"
            dest: /srv
            then: {exec: "kill -HUP 1"}
            ignore: [static/package.json]
        rebuild: [static/package.json]
        requires: [base]
      base: {image: shop/base, context: app, archetype: worker}
    profiles:
      prod:
        activation: [{env: SHOP_PROD}, {kube_context: "prod-*"}]
        values: {replicas: 3}
        services: {web: {values: {replicas: 2}}}
    """


@pytest.fixture
def proj(devloop_project: Make) -> DevloopProject:
    return devloop_project({"devloop.yaml": GOOD, "app/Dockerfile": "FROM scratch\n"})


def test_version(proj: DevloopProject) -> None:
    result = proj.run("--version")
    assert (result.code, result.out, result.err) == (0, f"devloop, version {__version__}\n", "")


@pytest.mark.docker
def test_version_verbose_names_the_engine_and_the_cluster_it_would_talk_to(
    proj: DevloopProject,
) -> None:
    shown = proj.run("--version", "--verbose", "render")  # the command is never run
    assert shown.code == 0, shown.err
    first, engine, cluster = shown.out.splitlines()
    assert first == f"devloop, version {__version__}"
    assert engine.startswith("docker engine: Docker Engine ")
    assert engine.endswith(" at unix:///var/run/docker.sock") or "DOCKER_HOST" in os.environ
    # devloop.yaml's context, which the test kubeconfig does not have: said, not a traceback
    assert cluster.startswith("kubernetes: context kind-dev: API server not reachable: ")
    assert proj.run("-v", "--version").out.splitlines()[1:] == [engine, cluster]


def test_run_in_another_directory(proj: DevloopProject) -> None:
    result = proj.run("render", "--image", "base=b:1", cwd=proj.path.parent)
    assert result.code == 0, result.err
    assert "kind: Deployment" in result.out
    proj.write({"devloop.yaml": "name: shop\nservices: []\n"})
    # Paths in messages are relative to where the user is, so an editor can jump to them.
    failed = proj.run("render", cwd=proj.path.parent)
    assert (failed.code, failed.err) == (
        2,
        f"error: {proj.path.name}/devloop.yaml:2:11: services: Input should be a valid dictionary "
        f"(got a list)\n",
    )


def test_directory_that_does_not_exist(proj: DevloopProject) -> None:
    result = proj.run("-C", str(proj.path / "nowhere"), "render", chdir_flag=False)
    assert result.code == 2
    assert result.err.endswith(
        f"Error: Invalid value for -C: '{proj.path / 'nowhere'}' is not a directory\n"
    )


def test_unknown_command_is_a_usage_error(proj: DevloopProject) -> None:
    result = proj.run("rendr")
    assert (result.code, result.out) == (2, "")
    assert "No such command 'rendr'" in result.err


def test_unknown_option_is_a_usage_error(proj: DevloopProject) -> None:
    result = proj.run("render", "--frobnicate")
    assert (result.code, result.out) == (2, "")
    # click words it "No such option '--frobnicate'." since 8.2.x, "No such option: --frobnicate"
    # before (the dependency floor is 8.1)
    assert re.search(r"Error: No such option:? '?--frobnicate", result.err), result.err


def schema(proj: DevloopProject) -> dict[str, Any]:
    result = proj.run("schema")
    assert (result.code, result.err) == (0, "")
    loaded: dict[str, Any] = json.loads(result.out)
    jsonschema.Draft7Validator.check_schema(loaded)
    return loaded


def test_schema_accepts_good_configs(proj: DevloopProject) -> None:
    validator = jsonschema.Draft7Validator(schema(proj))
    for text in (GOOD, (ROOT / "devloop.yaml").read_text()):
        # Editors see the YAML as written: anchors resolved, ${VAR}s unexpanded.
        assert list(validator.iter_errors(yaml.safe_load(textwrap.dedent(text)))) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda c: c["services"]["web"]["sync"][0].update(dst="/x"), "'dst' was unexpected"),
        (lambda c: c["services"]["web"].pop("image"), "'image' is a required property"),
        (lambda c: c.update(target="cloud"), "'cloud' is not one of"),
        (lambda c: c["services"]["web"].update(env=["A=1"]), "is not of type 'object'"),
        (lambda c: c.update(name="Shop"), "does not match"),
        # a profile's service override is held to the same keys as a service
        (
            lambda c: c["profiles"]["prod"]["services"]["web"].update(enviro={}),
            "'enviro' was unexpected",
        ),
    ],
)
def test_schema_rejects_bad_configs(
    proj: DevloopProject, change: Callable[[dict[str, Any]], object], complaint: str
) -> None:
    validator = jsonschema.Draft7Validator(schema(proj))
    config = yaml.safe_load(textwrap.dedent(GOOD))
    change(config)
    messages = [e.message for e in validator.iter_errors(config)]
    assert any(complaint in m for m in messages), messages


def test_schema_describes_fields_for_editors(proj: DevloopProject) -> None:
    service = schema(proj)["definitions"]["ServiceSpec"]["properties"]
    assert "computed" in service["image"]["description"]
    assert service["ports"]["items"]["anyOf"] == [{"type": "string"}, {"type": "integer"}]


def test_relative_paths_are_taken_from_the_directory_given_with_C(proj: DevloopProject) -> None:
    report = {"version": 1, "services": {"base": {"image": "shop/base:1", "digest": None}}}
    proj.write({"report.json": json.dumps(report)})
    result = proj.run(
        "render", "--build-report", "report.json", "--output", "out", cwd=proj.path.parent
    )
    assert (result.code, result.err) == (0, "")
    assert sorted(p.name for p in (proj.path / "out").iterdir()) == [
        "00-service-web.yaml",
        "01-deployment-base.yaml",
        "02-deployment-web.yaml",
    ]
    assert "image: shop/base:1\n" in (proj.path / "out" / "01-deployment-base.yaml").read_text()
    missing = proj.run("render", "--build-report", "gone.json", cwd=proj.path.parent)
    assert (missing.code, missing.err) == (
        1,
        f"error: cannot read the build report {proj.path.name}/gone.json: No such file or "
        f"directory\n",
    )


def test_ctrl_c_exits_130(proj: DevloopProject, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> int:
        raise KeyboardInterrupt  # what the terminal delivers when the user presses Ctrl-C

    monkeypatch.setattr(render_command, "run", interrupted)
    result = proj.run("render")
    assert (result.code, result.out, result.err) == (
        130,
        "",
        "\ninterrupted\n",
    )  # click ends the ^C line first


def test_schema_events_describes_every_event_type(proj: DevloopProject) -> None:
    result = proj.run("schema", "--events")
    assert (result.code, result.err) == (0, "")
    loaded = json.loads(result.out)
    jsonschema.Draft202012Validator.check_schema(loaded)
    kinds = set(loaded["$defs"])
    assert {
        "sync",
        "build_done",
        "ready",
        "fatal",
        "plan",
        "check",
        "build_report",
        "crashed",
    } <= kinds
    validator = jsonschema.Draft202012Validator(loaded)
    good = {"v": 1, "event": "ready", "ts": 1.0, "service": "web", "urls": []}
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "v": 2})
    assert not validator.is_valid({**good, "surprise": 1})


def test_config_error_is_a_fatal_event_on_stdout_under_output_json(
    proj: DevloopProject,
) -> None:
    (proj.path / "devloop.yaml").write_text("name: i15x\nservices: {web: {imag: x}}\n")
    result = proj.run("--output", "json", "plan")
    assert result.code == 2
    assert "error:" in result.err  # people still read stderr
    (event,) = [json.loads(line) for line in result.out.splitlines()]
    assert (event["v"], event["event"], event["exit_code"]) == (1, "fatal", 2)
    assert "imag" in event["message"] and not event["message"].startswith("error:")


def test_text_output_keeps_stdout_empty_on_a_config_error(proj: DevloopProject) -> None:
    (proj.path / "devloop.yaml").write_text("name: i15x\nservices: {web: {imag: x}}\n")
    result = proj.run("plan")
    assert (result.code, result.out) == (2, "")


def test_plan_under_output_json_is_a_versioned_event(proj: DevloopProject) -> None:
    result = proj.run("plan", "--output", "json")
    assert result.code == 0, result.err
    (event,) = [json.loads(line) for line in result.out.splitlines()]
    assert (event["v"], event["event"]) == (1, "plan")
    assert "services" in event


def test_config_is_found_in_a_parent_directory_and_named(proj: DevloopProject) -> None:
    sub = proj.path / "app" / "deep"
    sub.mkdir()
    result = proj.run("--output", "json", "plan", cwd=sub, chdir_flag=False)
    assert result.code == 0, result.err
    assert result.err == f"using {proj.path / 'devloop.yaml'}\n"
    (event,) = [json.loads(line) for line in result.out.splitlines()]
    # the services' paths resolve from the config's directory, not from where devloop started
    assert event["event"] == "plan" and {s["name"] for s in event["services"]} == {"web", "base"}


def test_the_search_stops_at_the_repository_root(proj: DevloopProject) -> None:
    repo = proj.path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    result = proj.run("plan", cwd=repo / "sub", chdir_flag=False)
    assert result.code == 2
    assert "no such file" in result.err and "using" not in result.err


def test_f_names_the_config_and_its_directory_is_the_project(proj: DevloopProject) -> None:
    alt = proj.path / "alt.yaml"
    alt.write_text((proj.path / "devloop.yaml").read_text().replace("name: shop", "name: i15f"))
    elsewhere = proj.path.parent
    result = proj.run("-f", str(alt), "--output", "json", "plan", cwd=elsewhere, chdir_flag=False)
    assert result.code == 0, result.err
    (event,) = [json.loads(line) for line in result.out.splitlines()]
    assert event["project"] == "i15f"
    missing = proj.run("-f", "nope.yaml", "plan", cwd=elsewhere, chdir_flag=False)
    assert missing.code == 2 and "'nope.yaml' is not a file" in missing.err
