"""`devloop render` as a user sees it: archetypes, labels, order, filters, template errors,
files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:  # imported by pytest as a plugin, so that its asserts are rewritten
    from tests.project_fixture import DevloopProject, Files, Result

    Make = Callable[[Files], DevloopProject]


DOCKERFILE = "FROM scratch\nCOPY . /app\n"
LABELS = {
    "app.kubernetes.io/managed-by": "devloop",
    "app.kubernetes.io/part-of": "shop",
    "devloop.dev/service": "web",
}


def with_template(make: Make, template: str, *, values: str = "{}", **files: str) -> DevloopProject:
    """A one-service project whose manifests are `template` (at k8s/app.yaml.j2)."""
    config = f"""\
        name: shop
        values: {values}
        services:
          web:
            image: shop/web
            context: app
            env: {{MODE: dev}}
            manifests: [k8s/app.yaml.j2]
        profiles:
          staging: {{kubernetes: {{namespace: shop-staging}}}}
        """
    return make(
        {"devloop.yaml": config, "app/Dockerfile": DOCKERFILE, "k8s/app.yaml.j2": template, **files}
    )


def objects(result: Result) -> list[dict[str, Any]]:
    assert result.code == 0, result.err
    return [d for d in yaml.safe_load_all(result.out) if d is not None]


def assert_template_error(result: Result, message: str) -> None:
    assert (result.code, result.err, result.out) == (2, f"error: {message}\n", "")


ARCHETYPES = """\
    name: shop
    values: {replicas: 2}
    services:
      web:
        image: shop/web
        context: app
        ports: ["8080:80"]
        values:
          probe_path: /healthz
          resources: {requests: {cpu: 50m}}
      queue:
        image: shop/queue
        context: app
        archetype: worker
        values: {args: [work, --fast]}
    """


def test_archetypes_render_valid_objects(devloop_project: Make) -> None:
    proj = devloop_project({"devloop.yaml": ARCHETYPES, "app/Dockerfile": DOCKERFILE})
    result = proj.run(
        "render", "--validate", "--image", "web=shop/web:v1", "--image", "queue=shop/queue:v1"
    )
    found = {(o["kind"], o["metadata"]["name"]): o for o in objects(result)}
    assert list(found) == [("Service", "web"), ("Deployment", "queue"), ("Deployment", "web")]
    web = found[("Deployment", "web")]["spec"]
    assert web["replicas"] == 2
    container = web["template"]["spec"]["containers"][0]
    assert container["image"] == "shop/web:v1"
    assert container["ports"] == [{"containerPort": 80}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 80}
    assert container["resources"] == {"requests": {"cpu": "50m"}}
    assert found[("Service", "web")]["spec"]["ports"][0]["targetPort"] == 80
    queue = found[("Deployment", "queue")]["spec"]["template"]["spec"]["containers"][0]
    assert queue["args"] == ["work", "--fast"]
    assert "readinessProbe" not in queue


def test_labels_on_objects_and_pod_templates(devloop_project: Make) -> None:
    proj = devloop_project({"devloop.yaml": ARCHETYPES, "app/Dockerfile": DOCKERFILE})
    for obj in objects(proj.run("render")):
        service = obj["metadata"]["name"]
        expected = {**LABELS, "devloop.dev/service": service}
        assert obj["metadata"]["labels"].items() >= expected.items()
        assert obj["metadata"]["namespace"] == "shop"
        if obj["kind"] == "Deployment":
            assert obj["spec"]["template"]["metadata"]["labels"] == {"app": service, **expected}


SCRAMBLED = """\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: web, image: "{{ image }}"}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec: {selector: {app: web}, ports: [{port: 80}]}
    ---
    apiVersion: v1
    kind: Secret
    metadata: {name: web}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: web}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: "{{ namespace }}"}
    """


def test_output_is_ordered_and_byte_identical_across_runs(devloop_project: Make) -> None:
    proj = with_template(devloop_project, SCRAMBLED)
    first, second = proj.run("render"), proj.run("render")
    assert [o["kind"] for o in objects(first)] == [
        "Namespace",
        "ConfigMap",
        "Secret",
        "Service",
        "Deployment",
    ]
    assert first.out == second.out
    namespace = objects(first)[0]["metadata"]
    assert "namespace" not in namespace  # cluster-scoped: no namespace added


def test_undefined_value_names_template_and_line(devloop_project: Make) -> None:
    template = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata:\n  a: {{ values.nope }}\n"
    )
    assert_template_error(
        with_template(devloop_project, template).run("render"),
        "k8s/app.yaml.j2:5: undefined value: 'dict object' has no attribute 'nope'",
    )


def test_undefined_value_in_an_included_template_names_that_file(devloop_project: Make) -> None:
    template = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata:\n{% include "
        "'k8s/data.j2' %}\n"
    )
    proj = with_template(
        devloop_project, template, **{"k8s/data.j2": "  ok: x\n  bad: {{ nothing }}\n"}
    )
    # Includes resolve against the project root, like the manifests list does.
    assert_template_error(
        proj.run("render"), "k8s/data.j2:2: undefined value: 'nothing' is undefined"
    )


def test_template_syntax_error_names_file_and_line(devloop_project: Make) -> None:
    template = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {{ values. }}\n"
    assert_template_error(
        with_template(devloop_project, template).run("render"),
        "k8s/app.yaml.j2:4: expected name or number",
    )


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ("kind: ConfigMap\nmetadata: {name: a}\n", "missing 'apiVersion'"),
        ("apiVersion: v1\nmetadata: {name: a}\n", "missing 'kind'"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {}}\n", "missing 'metadata.name'"),
    ],
)
def test_rendered_document_that_is_not_an_object(
    devloop_project: Make, doc: str, problem: str
) -> None:
    template = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ok}}\n---\n{doc}"
    where = "document 2 (ConfigMap)" if "metadata" in problem else "document 2"
    assert_template_error(
        with_template(devloop_project, template).run("render"),
        f"k8s/app.yaml.j2: {where} is not a Kubernetes object: {problem}",
    )


def test_rendered_output_that_is_not_yaml(devloop_project: Make) -> None:
    result = with_template(devloop_project, "kind: [unclosed\n").run("render")
    assert result.code == 2
    assert result.err.startswith("error: k8s/app.yaml.j2: rendered output is not valid YAML: ")


def test_filters(devloop_project: Make) -> None:
    template = """\
        apiVersion: v1
        kind: Secret
        metadata: {name: web}
        data:
          token: {{ "hunter2" | b64encode }}
        stringData:
          quoted: {{ 'a: "b" # c' | quote }}
          json: {{ values.cfg | to_json | quote }}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: web}
        data:
          {{ values.data | to_yaml(2) }}
        """
    values = "{cfg: {b: 2, a: [1]}, data: {'yes': 'on', port: '8080', text: 'multi'}}"
    configmap, secret = objects(
        with_template(devloop_project, template, values=values).run("render")
    )
    assert secret["data"] == {"token": "aHVudGVyMg=="}
    assert secret["stringData"] == {"quoted": 'a: "b" # c', "json": '{"a": [1], "b": 2}'}
    assert configmap["data"] == {"yes": "on", "port": "8080", "text": "multi"}


def test_template_context(devloop_project: Make) -> None:
    template = """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: web}
        data:
          project: {{ project | quote }}
          namespace: {{ namespace | quote }}
          profile: {{ profile | quote }}
          service: {{ service.name | quote }}
          service_image: {{ service.image | quote }}
          repository: {{ service.repository | quote }}
          service_env: {{ service.env.MODE | quote }}
          image: {{ image | quote }}
          replicas: {{ values.replicas | quote }}
          env: {{ env.SHOP_GREETING | quote }}
        """
    proj = with_template(devloop_project, template, values="{replicas: 4}")
    result = proj.run(
        "render", "-p", "staging", "--image", "web=reg/web:abc", env={"SHOP_GREETING": "hi"}
    )
    assert objects(result)[0]["data"] == {
        "project": "shop",
        "namespace": "shop-staging",
        "profile": "staging",
        "service": "web",
        "service_image": "reg/web:abc",
        "repository": "shop/web",
        "service_env": "dev",
        "image": "reg/web:abc",
        "replicas": "4",
        "env": "hi",
    }


def test_image_defaults_to_the_tag_a_build_would_produce(devloop_project: Make) -> None:
    proj = devloop_project({"devloop.yaml": ARCHETYPES, "app/Dockerfile": DOCKERFILE})
    before = objects(proj.run("render", "web"))[1]["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    assert before.startswith("shop/web:") and len(before) == len("shop/web:") + 16
    assert (
        objects(proj.run("render", "web"))[1]["spec"]["template"]["spec"]["containers"][0]["image"]
        == before
    )
    proj.write({"app/new.txt": "changed input"})
    after = objects(proj.run("render", "web"))[1]["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    assert after != before


def test_named_services_only(devloop_project: Make) -> None:
    proj = devloop_project({"devloop.yaml": ARCHETYPES, "app/Dockerfile": DOCKERFILE})
    assert {o["metadata"]["name"] for o in objects(proj.run("render", "queue"))} == {"queue"}
    result = proj.run("render", "nope")
    assert (result.code, result.err) == (
        2,
        "error: unknown service(s): nope (services: web, queue)\n",
    )


def test_output_dir_writes_one_file_per_object(devloop_project: Make) -> None:
    proj = with_template(devloop_project, SCRAMBLED)
    out = proj.path / "out"
    out.mkdir()
    (out / "07-deployment-old.yaml").write_text("stale\n")
    (out / "README.md").write_text("mine\n")
    result = proj.run("render", "--output", "out")
    assert (result.code, result.out, result.err) == (0, "", "")
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "00-namespace-shop.yaml",
        "01-configmap-web.yaml",
        "02-secret-web.yaml",
        "03-service-web.yaml",
        "04-deployment-web.yaml",
        "README.md",
    ]
    joined = "".join((out / n).read_text() for n in names if n.endswith(".yaml"))
    assert joined == proj.run("render").out


def test_image_override(devloop_project: Make) -> None:
    proj = devloop_project({"devloop.yaml": ARCHETYPES, "app/Dockerfile": DOCKERFILE})
    result = proj.run("render", "--image", "queue=registry.local/queue@sha256:" + "a" * 64)
    images = [
        o["spec"]["template"]["spec"]["containers"][0]["image"]
        for o in objects(result)
        if o["kind"] == "Deployment"
    ]
    assert images[0] == "registry.local/queue@sha256:" + "a" * 64
    assert images[1].startswith("shop/web:")


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("queue", "Invalid value for --image: 'queue' is not SERVICE=REF"),
        ("db=x", "error: unknown service(s): db (services: web, queue)"),
    ],
)
def test_bad_image_override(devloop_project: Make, flag: str, message: str) -> None:
    proj = devloop_project({"devloop.yaml": ARCHETYPES, "app/Dockerfile": DOCKERFILE})
    result = proj.run("render", "--image", flag)
    assert result.code == 2
    assert message in result.err
    assert result.out == ""


def test_validate_reports_kind_name_and_field(devloop_project: Make) -> None:
    template = """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: "three"
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers:
                - {name: web, image: "{{ image }}", prots: []}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec: {selector: {app: web}, ports: [{port: 80}]}
        """
    result = with_template(devloop_project, template).run("render", "--validate")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "error: 2 schema violation(s):\n"
        "  k8s/app.yaml.j2: Deployment/web: spec.replicas: 'three' is not of type 'integer', "
        "'null'\n"
        "  k8s/app.yaml.j2: Deployment/web: spec.template.spec.containers[0]: unknown field "
        "'prots'\n"
    )


def test_every_profile_of_the_repository_config_validates(devloop_project: Make) -> None:
    root = Path(__file__).resolve().parents[2]
    names = list(yaml.safe_load((root / "devloop.yaml").read_text()).get("profiles") or {})
    proj = devloop_project({})
    for profile in [None, *names]:
        args = ["-C", str(root), "render", "--validate", *(["-p", profile] if profile else [])]
        result = proj.run(*args, chdir_flag=False)
        assert result.code == 0, (profile, result.err)
        assert objects(result)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("nope", "error: Kubernetes version 'nope' is not X.Y (e.g. 1.30)\n"),
        (
            "1.9",
            "error: no Kubernetes schemas for 1.9: kubernetes-validate has 1.",
        ),  # 1.22, 1.25...: its release
    ],
)
def test_validate_with_an_unusable_kubernetes_version(
    devloop_project: Make, version: str, message: str
) -> None:
    proj = devloop_project({"devloop.yaml": ARCHETYPES, "app/Dockerfile": DOCKERFILE})
    result = proj.run("render", "--validate", "--kube-version", version)
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith(message)


def test_validate_against_an_older_kubernetes(devloop_project: Make) -> None:
    proj = devloop_project({"devloop.yaml": ARCHETYPES, "app/Dockerfile": DOCKERFILE})
    assert proj.run("render", "--validate", "--kube-version", "v1.29.3").code == 0


def test_build_report_pins_digests(devloop_project: Make) -> None:
    proj = devloop_project({"devloop.yaml": ARCHETYPES, "app/Dockerfile": DOCKERFILE})
    digest = "sha256:" + "b" * 64
    report = {"version": 1, "services": {"web": {"image": "shop/web:abc", "digest": digest}}}
    proj.write({"report.json": json.dumps(report)})
    images = [
        o["spec"]["template"]["spec"]["containers"][0]["image"]
        for o in objects(proj.run("render", "--build-report", "report.json"))
        if o["kind"] == "Deployment"
    ]
    assert images[1] == f"shop/web:abc@{digest}"
    proj.write({"report.json": "{}"})
    broken = proj.run("render", "--build-report", "report.json")
    assert (broken.code, broken.out) == (1, "")
    assert broken.err.startswith("error: report.json: not a devloop build report")


def test_templates_are_sandboxed(devloop_project: Make, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    template = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata:\n"
        f"  a: \"{{{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}}}\"\n"
    )
    result = with_template(devloop_project, template).run("render")
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("error: k8s/app.yaml.j2:5: ")
    assert "unsafe" in result.err
    assert not marker.exists()


def test_includes_stay_inside_the_project(devloop_project: Make, tmp_path: Path) -> None:
    template = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata:\n"
        "{% include '../outside.j2' %}\n"
    )
    (tmp_path / "outside.j2").write_text("  secret: x\n")
    assert_template_error(
        with_template(devloop_project, template).run("render"),
        "k8s/app.yaml.j2: template '../outside.j2' not found",
    )


LEEROY = """\
    name: leeroy
    services:
      web:
        image: leeroy-web
        context: web
        manifests: ["k8s/w*.yaml"]
      app:
        image: leeroy-app
        context: app
        manifests: [k8s/app.yaml]
    profiles:
      pushed: {registry: "localhost:5000"}
    """
LEEROY_WEB = """\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: leeroy-web}
    spec:
      selector: {matchLabels: {app: leeroy-web}}
      template:
        metadata: {labels: {app: leeroy-web}}
        spec:
          initContainers: [{name: wait, image: "leeroy-app:latest"}]
          containers:
            - {name: web, image: leeroy-web}
            - {name: cache, image: "redis:7"}
    ---
    apiVersion: batch/v1
    kind: CronJob
    metadata: {name: leeroy-report}
    spec:
      schedule: "@daily"
      jobTemplate:
        spec:
          template:
            spec:
              restartPolicy: Never
              containers: [{name: report, image: "leeroy-web@sha256:%s"}]
    ---
    apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: leeroy-canary}
    spec:
      template:
        spec:
          containers: [{name: web, image: leeroy-web}]
    """ % ("0" * 64)
LEEROY_APP = """\
    apiVersion: v1
    kind: Pod
    metadata: {name: leeroy-app}
    spec:
      containers: [{name: app, image: leeroy-app}]
      ephemeralContainers: [{name: debug, image: "leeroy-web:v1"}]
    """


def _images(obj: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found.extend(v for k, v in node.items() if k == "image" and isinstance(v, str))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(obj)
    return found


@pytest.mark.parametrize("profile", [None, "pushed"])
def test_existing_manifests_get_the_built_tag_of_every_image_they_name(
    devloop_project: Make, profile: str | None
) -> None:
    proj = devloop_project(
        {
            "devloop.yaml": LEEROY,
            "web/Dockerfile": DOCKERFILE,
            "app/Dockerfile": DOCKERFILE,
            "k8s/web.yaml": LEEROY_WEB,
            "k8s/app.yaml": LEEROY_APP,
        }
    )
    args = ("-p", profile) if profile else ()
    result = proj.run("render", *args)
    objs = {o["metadata"]["name"]: o for o in objects(result)}
    prefix = "localhost:5000/" if profile else ""
    web = _images(objs["leeroy-web"])
    web_ref = next(i for i in web if i.startswith(f"{prefix}leeroy-web:"))
    app_ref = next(i for i in _images(objs["leeroy-app"]) if i.startswith(f"{prefix}leeroy-app:"))
    assert len(web_ref) == len(f"{prefix}leeroy-web:") + 16
    assert web == [app_ref, web_ref, "redis:7"]  # init container, container, untouched
    assert _images(objs["leeroy-report"]) == [web_ref]
    assert _images(objs["leeroy-canary"]) == [web_ref]
    assert _images(objs["leeroy-app"]) == [app_ref, web_ref]
    # render says what it replaced, above the object
    assert (
        "# devloop replaced image references with the built tag:\n"
        f"#   spec.template.spec.initContainers[0].image: leeroy-app:latest -> {app_ref}\n"
        f"#   spec.template.spec.containers[0].image: leeroy-web -> {web_ref}\n"
        "apiVersion: apps/v1\n"
    ) in result.out
    assert f"#   spec.ephemeralContainers[0].image: leeroy-web:v1 -> {web_ref}\n" in result.out


def test_manifests_that_already_name_the_built_tag_are_left_alone(devloop_project: Make) -> None:
    proj = devloop_project({"devloop.yaml": ARCHETYPES, "app/Dockerfile": DOCKERFILE})
    assert "# devloop replaced" not in proj.run("render").out
