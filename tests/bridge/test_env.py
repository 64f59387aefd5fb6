"""`dev --local SERVICE --print-env` and `plan --local`: the pod's env for a local process."""

from __future__ import annotations

import base64
from collections.abc import Callable

from tests.project_fixture import DevloopProject, Files

B64 = base64.b64encode(b"hunter2").decode()
PROJECT: Files = {
    "devloop.yaml": """
        name: i18env
        services:
          api:
            image: i18/api
            manifests: [api.yaml.j2]
            local:
              command: python -m api
              env: {DEBUG: "1"}
          web:
            image: i18/web
            archetype: web
            ports: ["18180:8080"]
    """,
    "api.yaml.j2": f"""
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: api-config}}
        data: {{LOG_LEVEL: debug, REGION: eu}}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {{name: api-secret}}
        data: {{DB_PASSWORD: {B64}}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: api}}
        spec:
          selector: {{matchLabels: {{app: api}}}}
          template:
            metadata: {{labels: {{app: api}}}}
            spec:
              containers:
                - name: api
                  image: {{{{ image }}}}
                  ports: [{{containerPort: 8000}}]
                  envFrom: [{{configMapRef: {{name: api-config}}}}]
                  env:
                    - {{name: PORT, value: "8000"}}
                    - name: DB_PASSWORD
                      valueFrom: {{secretKeyRef: {{name: api-secret, key: DB_PASSWORD}}}}
                    - {{name: DB_URL, value: "postgres://app:$(DB_PASSWORD)@db/app"}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: api}}
        spec:
          selector: {{app: api}}
          ports: [{{port: 80, targetPort: 8000}}]
    """,
    "Dockerfile": "FROM scratch\n",
}


def test_print_env_resolves_config_maps_and_masks_secrets(
    devloop_project: Callable[[Files], DevloopProject],
) -> None:
    proj = devloop_project(PROJECT)
    result = proj.run("dev", "--local", "api", "--print-env")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "export LOG_LEVEL=debug" in lines  # from the ConfigMap (envFrom)
    assert "export REGION=eu" in lines
    assert "export PORT=8000" in lines
    assert "export DEBUG=1" in lines  # local.env of devloop.yaml
    assert "export DB_PASSWORD='********'" in lines  # from a Secret: masked
    assert "export DB_URL='********'" in lines  # built from a Secret: masked too
    assert "hunter2" not in result.out
    assert "# listens on: 8000" in lines


def test_print_env_shows_secrets_when_asked(
    devloop_project: Callable[[Files], DevloopProject],
) -> None:
    proj = devloop_project(PROJECT)
    result = proj.run("dev", "--local", "api", "--print-env", "--show-secrets")
    assert result.code == 0, result.err
    assert "export DB_PASSWORD=hunter2" in result.out.splitlines()
    assert "export DB_URL=postgres://app:hunter2@db/app" in result.out.splitlines()


def test_print_env_names_a_missing_secret(
    devloop_project: Callable[[Files], DevloopProject],
) -> None:
    files = dict(PROJECT)
    files["api.yaml.j2"] = str(files["api.yaml.j2"]).replace("name: api-secret,", "name: nope,")
    proj = devloop_project(files)
    result = proj.run("dev", "--local", "api", "--print-env")
    assert result.code == 2
    assert "Secret 'nope'" in result.err


def test_local_options_need_local(devloop_project: Callable[[Files], DevloopProject]) -> None:
    proj = devloop_project(PROJECT)
    result = proj.run("dev", "--print-env")
    assert result.code == 2
    assert "--local SERVICE" in result.err


def test_plan_says_what_local_would_do(devloop_project: Callable[[Files], DevloopProject]) -> None:
    proj = devloop_project(PROJECT)
    result = proj.run("plan", "--local", "api", "--intercept-header", "x-dev=alice")
    assert result.code == 0, result.err
    out = result.out
    assert "local api: run python -m api" in out
    assert "env: 6 variable(s) from Deployment/api, 2 from Secrets" in out
    assert "listens on: 8000" in out
    assert "answers as api:80" in out
    assert "only HTTP/1.x requests with header x-dev=alice" in out
    assert "outgoing: web:8080" in out
