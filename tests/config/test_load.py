"""devloop.yaml errors as a user sees them: `error: file:line:col: key.path: message`, exit 2.

Every case drives the real CLI (`devloop render`) on a project written into a tmpdir, and
checks that the command stops before producing anything (no manifest, so nothing to build
or deploy either).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import pytest

from devloop import config

if TYPE_CHECKING:  # imported by pytest as a plugin, so that its asserts are rewritten
    from tests.project_fixture import DevloopProject, Files, Result

    Make = Callable[[Files], DevloopProject]


DOCKERFILE = "FROM scratch\nCOPY . /app\n"


def project(make: Make, yaml: str, **files: str) -> DevloopProject:
    return make({"devloop.yaml": yaml, "app/Dockerfile": DOCKERFILE, **files})


def assert_config_error(result: Result, message: str) -> None:
    assert (result.code, result.err, result.out) == (2, f"error: {message}\n", "")


def test_unknown_key_names_line_column_path_and_suggests(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        # yaml-language-server: $schema=.devloop.schema.json
        name: shop
        values:
          replicas: 1
        services:
          web:
            image: shop/web
            context: app
            ports: ["8080:8080"]
            env:
              MODE: dev
            sync:
            - src: "app/**/*.py"
              dst: /app
        """,
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:14:7: services.web.sync[0]: unknown key 'dst' (did you mean 'dest'?)",
    )


def test_unknown_key_without_close_match_lists_allowed_keys(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        flavour: x
        services:
          web: {image: shop/web, context: app}
        """,
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:2:1: unknown key 'flavour' "
        "(allowed: ignore, keep_images, kubernetes, name, profiles, registry, registry_insecure, "
        "services, target, values)",
    )


def test_yaml_syntax_error(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web:
            image: shop/web
            ports: ["8080:80"
        """,
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:6:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"
        " (while parsing a flow sequence that starts at 5:12)",
    )


def test_missing_required_key_points_at_the_mapping_that_lacks_it(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web:
            image: shop/web
            context: app
          worker:
            context: app
        """,
    )
    assert_config_error(
        proj.run("render"), "devloop.yaml:6:3: services.worker: missing required key 'image'"
    )


def test_missing_key_in_a_list_item_points_at_the_item(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web:
            image: shop/web
            context: app
            sync:
              - src: "*.py"
        """,
    )
    assert_config_error(
        proj.run("render"), "devloop.yaml:7:9: services.web.sync[0]: missing required key 'dest'"
    )


def test_wrong_type_points_at_the_value(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web:
            image: shop/web
            context: app
            values: [1, 2]
        """,
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:6:13: services.web.values: Input should be a valid dictionary (got a list)",
    )


def test_unknown_profile_from_the_command_line(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web: {image: shop/web, context: app}
        profiles:
          prod: {values: {replicas: 3}}
        """,
    )
    assert_config_error(
        proj.run("render", "-p", "prd"),
        "devloop.yaml:4:1: profiles: unknown profile 'prd' (did you mean 'prod'?)",
    )


def test_unknown_profile_when_none_are_defined(devloop_project: Make) -> None:
    proj = project(
        devloop_project, "name: shop\nservices:\n  web: {image: shop/web, context: app}\n"
    )
    assert_config_error(
        proj.run("render", "-p", "prod"),
        "devloop.yaml: unknown profile 'prod' (profiles: none are defined)",
    )


def test_unknown_service_in_requires(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          base: {image: shop/base, context: app}
          web:
            image: shop/web
            context: app
            requires: [bsae]
        """,
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:7:16: services.web.requires[0]: unknown service 'bsae' (did you mean "
        "'base'?)",
    )


def test_requires_cycle(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web:
            image: shop/web
            context: app
            requires: [api]
          api:
            image: shop/api
            context: app
            requires: [web]
        """,
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:6:15: services.web.requires: requires cycle: web -> api -> web",
    )


def test_two_services_with_the_same_image(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web: {image: shop/web, context: app}
          api: {image: shop/web, context: app}
        """,
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:4:16: services.api.image: image 'shop/web' is also the image of service "
        "'web'",
    )


def test_sync_dest_must_be_absolute(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web:
            image: shop/web
            context: app
            sync:
              - {src: "site/**", dest: srv/site}
        """,
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:7:32: services.web.sync[0].dest: "
        "sync dest must be an absolute path in the container, got 'srv/site'",
    )


def test_context_directory_that_does_not_exist(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web:
            image: shop/web
            context: ./missing
        """,
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:5:14: services.web.context: context directory './missing' does not exist",
    )


def test_manifest_file_that_does_not_exist(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web:
            image: shop/web
            context: app
            manifests:
              - k8s/web.yaml.j2
              - k8s/typo.yaml.j2
        """,
        **{"k8s/web.yaml.j2": "{}\n"},
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:8:9: services.web.manifests[1]: manifest 'k8s/typo.yaml.j2' does not exist",
    )


def test_manifest_globs_name_every_file_they_match(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web:
            image: shop/web
            context: app
            manifests: ["k8s/*.yaml", "k8s/web.yaml", "extra/**/*.yml"]
        """,
        **{
            "k8s/web.yaml": "kind: ConfigMap\napiVersion: v1\nmetadata: {name: a}\n",
            "k8s/db.yaml": "kind: ConfigMap\napiVersion: v1\nmetadata: {name: b}\n",
            "k8s/notes.txt": "not a manifest\n",
            "extra/deep/c.yml": "kind: ConfigMap\napiVersion: v1\nmetadata: {name: c}\n",
        },
    )
    result = proj.run("render")
    assert result.code == 0, result.err
    assert [line for line in result.out.splitlines() if line.startswith("  name:")] == [
        "  name: a",
        "  name: b",
        "  name: c",
    ]


def test_manifest_glob_that_matches_nothing(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web:
            image: shop/web
            context: app
            manifests: [k8s/web.yaml, "deploy/*.yaml"]
        """,
        **{"k8s/web.yaml": "{}\n"},
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:6:31: services.web.manifests[1]: manifest glob 'deploy/*.yaml' matches no"
        " file",
    )


def test_unset_variable(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        registry: ${SHOP_REGISTRY}
        services:
          web: {image: shop/web, context: app}
        """,
    )
    assert_config_error(
        proj.run("render", env={"SHOP_REGISTRY": None}),
        "devloop.yaml:2:11: registry: environment variable SHOP_REGISTRY is not set"
        " (write ${SHOP_REGISTRY:-default} to give a default)",
    )


def test_variables_set_defaulted_and_escaped(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        registry: ${SHOP_REGISTRY:-localhost:5000}
        services:
          web:
            image: ${SHOP_IMAGE}
            context: app
            env:
              GREETING: "cost: $$5 ${SHOP_EMPTY:-free}"
        """,
    )
    result = proj.run(
        "render", env={"SHOP_REGISTRY": None, "SHOP_IMAGE": "shop/front", "SHOP_EMPTY": ""}
    )
    assert result.code == 0, result.err
    assert "image: localhost:5000/shop/front:" in result.out
    assert "value: 'cost: $5 free'" in result.out


def test_unset_variable_in_an_inactive_profile_is_fine(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web: {image: shop/web, context: app}
        profiles:
          prod:
            registry: ${PROD_REGISTRY}
        """,
    )
    assert proj.run("render", env={"PROD_REGISTRY": None}).code == 0
    assert_config_error(
        proj.run("render", "-p", "prod", env={"PROD_REGISTRY": None}),
        "devloop.yaml:6:15: profiles.prod.registry: environment variable PROD_REGISTRY is not set"
        " (write ${PROD_REGISTRY:-default} to give a default)",
    )


@pytest.mark.parametrize(
    ("ports", "column", "shown"),
    [
        ('["8080:99999"]', 13, "services.web.ports[0]: port '8080:99999'"),
        ('[80, "x:80"]', 17, "services.web.ports[1]: port 'x:80'"),
    ],
)
def test_bad_port(devloop_project: Make, ports: str, column: int, shown: str) -> None:
    proj = project(
        devloop_project,
        f"name: shop\nservices:\n  web:\n    image: shop/web\n    context: app\n    ports: "
        f"{ports}\n",
    )
    assert_config_error(
        proj.run("render"),
        f"devloop.yaml:6:{column}: {shown} is not 'local:container' or 'port', with ports in "
        f"1-65535",
    )


def test_local_port_used_twice(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web: {image: shop/web, context: app, ports: ["8080:80"]}
          api: {image: shop/api, context: app, ports: ["8080:8080"]}
        """,
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:4:48: services.api.ports[0]: local port 8080 is also used by service 'web'",
    )


def test_error_inside_a_profile_points_at_the_profile(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web:
            image: shop/web
            context: app
        profiles:
          prod:
            services:
              web:
                ports: ["80:http"]
        """,
    )
    # Checked even when the profile is not active: a typo should not wait for release day.
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:10:17: profiles.prod.services.web.ports[0]: port '80:http' is not "
        "'local:container'"
        " or 'port', with ports in 1-65535",
    )


def test_unknown_key_inside_a_profile_override(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web: {image: shop/web, context: app}
        profiles:
          prod:
            services:
              web: {contxt: prod}
        """,
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:7:13: profiles.prod.services.web: unknown key 'contxt' (did you mean "
        "'context'?)",
    )


def test_filesystem_problem_from_an_active_profile_points_at_the_profile(
    devloop_project: Make,
) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web: {image: shop/web, context: app}
        profiles:
          prod:
            services:
              web: {context: release}
        """,
    )
    assert proj.run("render").code == 0
    assert_config_error(
        proj.run("render", "-p", "prod"),
        "devloop.yaml:7:22: profiles.prod.services.web.context: context directory 'release' does "
        "not exist",
    )


def test_name_must_be_a_dns_label(devloop_project: Make) -> None:
    proj = project(
        devloop_project, "name: My_Shop\nservices:\n  web: {image: shop/web, context: app}\n"
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:1:7: name: 'My_Shop' is not a DNS label: lowercase letters, digits and '-',"
        " starting and ending with a letter or digit",
    )


def test_image_must_not_carry_a_tag(devloop_project: Make) -> None:
    proj = project(
        devloop_project, "name: shop\nservices:\n  web: {image: 'shop/web:1.0', context: app}\n"
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:3:16: services.web.image: image 'shop/web:1.0' must not carry a tag or "
        "digest:"
        " devloop computes the tag",
    )


def test_sync_then_must_be_known(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        services:
          web:
            image: shop/web
            context: app
            sync:
              - {src: "*.py", dest: /app, then: {exex: "kill -HUP 1"}}
        """,
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:7:42: services.web.sync[0].then: unknown key 'exex' (did you mean 'exec'?)",
    )


def test_missing_config_file(devloop_project: Make) -> None:
    proj = devloop_project({"app/Dockerfile": DOCKERFILE})
    assert_config_error(
        proj.run("render"), "devloop.yaml: no such file (run `devloop init` to write one)"
    )


def test_anchors_and_extension_keys(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        x-service: &service
          context: nowhere
          values: {replicas: 2}
        services:
          web:
            <<: *service
            image: shop/web
        """,
    )
    # A key merged in with `<<:` is reported where it was written.
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:3:12: services.web.context: context directory 'nowhere' does not exist",
    )


PROFILED = """\
    name: shop
    values:
      replicas: 1
      resources: {requests: {cpu: 10m}, limits: {memory: 64Mi}}
      args: [serve, --debug]
    services:
      web:
        image: shop/web
        context: app
        archetype: worker
        sync:
          - {src: "a/**", dest: /a}
          - {src: "b/**", dest: /b}
    profiles:
      prod:
        activation:
          - env: SHOP_ENV=prod
          - kube_context: "prod-*"
        values:
          replicas: 3
          resources: {limits: {memory: 1Gi}}
          args: [serve]
        services:
          web:
            sync:
              - {src: "c/**", dest: /c}
    """


def test_profile_activated_by_env_var(devloop_project: Make) -> None:
    proj = project(devloop_project, PROFILED)
    assert "replicas: 1\n" in proj.run("render", env={"SHOP_ENV": "dev"}).out
    assert "replicas: 3\n" in proj.run("render", env={"SHOP_ENV": "prod"}).out


def test_profile_activated_by_kube_context(devloop_project: Make, tmp_path: Path) -> None:
    proj = project(devloop_project, PROFILED)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: prod-eu\ncontexts: []\n")
    assert "replicas: 3\n" in proj.run("render", env={"KUBECONFIG": str(kubeconfig)}).out
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: kind-dev\ncontexts: []\n")
    assert "replicas: 1\n" in proj.run("render", env={"KUBECONFIG": str(kubeconfig)}).out


def test_profile_overrides_merge_mappings_and_replace_lists(devloop_project: Make) -> None:
    proj = project(devloop_project, PROFILED)
    result = proj.run("render", "-p", "prod")
    assert result.code == 0, result.err
    assert '"args": ["serve"]' not in result.out  # rendered through to_json, then re-dumped as YAML
    assert "args:\n        - serve\n        resources:" in result.out
    assert (
        "resources:\n          limits:\n            memory: 1Gi\n          requests:\n            "
        "cpu: 10m\n" in result.out
    )
    web = config.load(proj.path, ["prod"], environ={}).services["web"]
    assert [(r.src, r.dest) for r in web.sync] == [("c/**", "/c")]
    assert config.load(proj.path, environ={}).services["web"].sync[1].dest == "/b"


def test_load_returns_immutable_records(devloop_project: Make) -> None:
    proj = project(devloop_project, PROFILED)
    loaded = config.load(proj.path, environ={"SHOP_ENV": "prod"})
    assert loaded.profiles == ("prod",)
    assert loaded.values["replicas"] == 3
    with pytest.raises(TypeError):
        loaded.services["web"].env["X"] = "1"  # type: ignore[index]


@pytest.mark.docker
def test_bad_config_builds_nothing(
    devloop_project: Make, docker_client: docker.DockerClient
) -> None:
    repo = f"devloop-cfgtest/ok-{uuid.uuid4().hex[:8]}"
    proj = project(
        devloop_project,
        f"""\
        name: cfgtest
        services:
          ok: {{image: {repo}, context: app}}
          bad:
            image: {repo}-bad
            context: app
            sync: [{{src: "*", dest: relative}}]
        """,
    )
    try:
        result = proj.run("build")
        assert (result.code, result.out) == (2, "")
        assert result.err.startswith("error: devloop.yaml:7:29: services.bad.sync[0].dest: ")
        assert docker_client.images.list(name=repo) == []
    finally:
        for image in docker_client.images.list(name=repo):
            docker_client.images.remove(image.id, force=True)


BOMB = """\
name: shop
services:
  web: {image: shop/web, context: app}
x-a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
x-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
x-c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
x-d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
x-e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
x-f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
x-g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
x-h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
x-i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_yaml_bomb_is_refused_at_the_alias(devloop_project: Make) -> None:
    proj = project(devloop_project, BOMB)
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:8:1: x-e[0]: alias *d takes the document past 10000 values (a YAML bomb?):"
        " write the repeated part out or nest fewer aliases",
    )


def test_mapping_made_only_of_a_merge_key(devloop_project: Make) -> None:
    proj = project(
        devloop_project,
        """\
        name: shop
        x-svc: &svc {image: shop/web, context: app}
        services:
          web: {<<: *svc}
        """,
    )
    result = proj.run("render")
    assert (result.code, result.err) == (0, "")
    assert "image: shop/web:" in result.out


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (
            'sync: [{src: "../x/**", dest: /app}]',
            "6:18: services.web.sync[0].src: sync src must stay inside the build context (no '..'),"
            " got '../x/**'",
        ),
        (
            'sync: [{src: "/etc/**", dest: /app}]',
            "6:18: services.web.sync[0].src: sync src must be relative to the build context,"
            " got '/etc/**'",
        ),
        (
            'sync: [{src: "*", dest: "/app\\nx"}]',
            "6:29: services.web.sync[0].dest: sync dest must not contain a line break or NUL,"
            " got '/app\\nx'",
        ),
        (
            'rebuild: [package.json, "/etc/x"]',
            "6:14: services.web.rebuild: rebuild must be relative to the build context, got"
            " '/etc/x'",
        ),
        (
            'sync: [{src: "*", dest: /app, ignore: ["../x"]}]',
            "6:43: services.web.sync[0].ignore: sync ignore must stay inside the build context"
            " (no '..'), got '../x'",
        ),
        (
            'ports: ["8080:80", "8080:81"]',
            "6:24: services.web.ports[1]: local port 8080 is given twice",
        ),
        (
            "dockerfile: ../../Dockerfile",
            "6:17: services.web.dockerfile: Dockerfile '../../Dockerfile' is outside the project"
            " directory",
        ),
    ],
)
def test_config_edges_are_errors(devloop_project: Make, line: str, shown: str) -> None:
    proj = project(
        devloop_project,
        f"name: shop\nservices:\n  web:\n    image: shop/web\n    context: app\n    {line}\n",
        Dockerfile=DOCKERFILE,
    )
    assert_config_error(proj.run("render"), f"devloop.yaml:{shown}")


def test_long_service_name_message_is_whole(devloop_project: Make) -> None:
    name = "a" * 70
    proj = project(
        devloop_project, f"name: shop\nservices:\n  {name}: {{image: shop/web, context: app}}\n"
    )
    assert_config_error(
        proj.run("render"),
        f"devloop.yaml:3:3: services: key '{name}' is 70 characters long, more than the 63 allowed",
    )


def test_not_utf8_gives_line_and_column(devloop_project: Make) -> None:
    proj = devloop_project(
        {
            "devloop.yaml": b"name: shop\n# caf\xe9\n"
            b"services:\n  web: {image: shop/web, context: app}\n",
            "app/Dockerfile": DOCKERFILE,
        }
    )
    assert_config_error(
        proj.run("render"),
        "devloop.yaml:2:6: not UTF-8: byte 0xe9 cannot start or continue a character here"
        " (save the file as UTF-8)",
    )


def test_trigger_is_auto_or_manual(devloop_project: Make) -> None:
    yaml = """\
        name: shop
        services:
          web:
            image: shop/web
            context: app
            trigger: {trigger}
        """
    proj = project(devloop_project, yaml.format(trigger="manual"))
    assert config.load(proj.path).services["web"].trigger == "manual"
    proj = project(devloop_project, yaml.format(trigger="by-hand"))
    result = proj.run("render")
    assert result.code == 2 and result.err.startswith(
        "error: devloop.yaml:6:14: services.web.trigger: "
    )
    assert "'auto' or 'manual'" in result.err
