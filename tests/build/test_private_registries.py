"""`devloop run --push` / `build --push` against private registries started for these tests
(tests/registries.py): htpasswd Basic auth, TLS with a self-signed CA in certs.d, token auth;
credentials from DOCKER_CONFIG, errors a CI log can act on, and no plain-HTTP downgrade."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.project_fixture import DevloopProject
from tests.registries import PASSWORD, READER, USER, Impostor, docker_config, env_for

pytestmark = pytest.mark.docker

WORKER = 'FROM devloop/busybox:latest\nCOPY . /app\nCMD ["sleep", "300"]\n'


class I19:
    """A unique i19-prefixed project (one `app` worker); removes its containers and images."""

    def __init__(self, client: docker.DockerClient, make: Callable[..., DevloopProject]) -> None:
        self.client = client
        self.make = make
        self.name = f"i19-{uuid.uuid4().hex[:8]}"

    def project(self, registry: str, extra: str = "") -> DevloopProject:
        return self.make(
            {
                "devloop.yaml": (
                    f"name: {self.name}\ntarget: docker\nregistry: {registry}\n{extra}"
                    f"services:\n  app: {{image: {self.name}/app, context: app, "
                    "archetype: worker}\n"
                ),
                "app/Dockerfile": WORKER,
                "app/id.txt": self.name,  # a content tag no other test shares
            }
        )

    def cleanup(self) -> None:
        label = {"label": f"app.kubernetes.io/part-of={self.name}"}
        for c in self.client.containers.list(all=True, filters=label):
            c.remove(force=True)
        for n in self.client.networks.list(filters=label):
            n.remove()
        for image in self.client.api.images():
            names = [*(image.get("RepoTags") or []), *(image.get("RepoDigests") or [])]
            if any(f"/{self.name}/" in n for n in names):
                with contextlib.suppress(docker.errors.APIError):
                    self.client.api.remove_image(image["Id"], force=True)


@pytest.fixture
def i19(
    docker_client: docker.DockerClient,
    base_image: str,
    devloop_project: Callable[..., DevloopProject],
) -> Iterator[I19]:
    p = I19(docker_client, devloop_project)
    yield p
    p.cleanup()


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def kinds(out: str) -> list[str]:
    return [e["event"] for e in events(out)]


@pytest.mark.parametrize("kind", ["basic", "tls", "token"])
def test_run_push_builds_and_pushes_then_skips(
    kind: str, private_registries: dict[str, Any], i19: I19, tmp_path: Path
) -> None:
    reg = private_registries[kind]
    creds = None if kind == "tls" else docker_config(tmp_path, reg.host, USER, PASSWORD)
    proj = i19.project(reg.host)
    first = proj.run("--output", "json", "run", "--push", env=env_for(creds))
    assert first.code == 0, first.err
    assert "build_started" in kinds(first.out) and "build_skipped" not in kinds(first.out)
    done = next(e for e in events(first.out) if e["event"] == "build_done")
    repo, tag = done["image"].removeprefix(f"{reg.host}/").rsplit(":", 1)
    assert reg.digest(repo, tag) == done["digest"]

    again = proj.run("--output", "json", "run", "--push", env=env_for(creds))
    assert again.code == 0, again.err
    skipped = [e for e in events(again.out) if e["event"] == "build_skipped"]
    assert [e["reason"] for e in skipped] == [f"already in registry {reg.host}"]
    assert "build_started" not in kinds(again.out)
    assert proj.run("delete").code == 0


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_wrong_password_names_the_registry_and_docker_login(
    kind: str, private_registries: dict[str, Any], i19: I19, tmp_path: Path
) -> None:
    reg = private_registries[kind]
    proj = i19.project(reg.host)
    wrong = docker_config(tmp_path, reg.host, USER, "not-the-password")
    result = proj.run("--output", "json", "run", "--push", env=env_for(wrong))
    assert result.code == 1
    assert f"the credentials for {reg.host} from auths in {wrong}/config.json were refused" in (
        result.err
    )
    assert f"run `docker login {reg.host}`" in result.err
    assert "build_started" not in kinds(result.out)  # said before any build

    nobody = proj.run("build", "--push", env=env_for(None))
    assert nobody.code == 1
    assert f"not logged in to {reg.host} (run `docker login {reg.host}` or set up a" in nobody.err


def test_token_realm_user_without_push_is_told_so(
    private_registries: dict[str, Any], i19: I19, tmp_path: Path
) -> None:
    reg = private_registries["token"]
    proj = i19.project(reg.host)
    reader = docker_config(tmp_path, reg.host, READER, PASSWORD)
    result = proj.run("build", "--push", env=env_for(reader))
    assert result.code == 1
    assert f"logged in to {reg.host}, but not allowed to push to {i19.name}/app" in result.err


def test_rate_limited_token_requests_are_retried_then_named(
    private_registries: dict[str, Any], i19: I19, tmp_path: Path
) -> None:
    reg, server = private_registries["token"], private_registries["token_server"]
    proj = i19.project(reg.host)
    creds = docker_config(tmp_path, reg.host, USER, PASSWORD)
    server.rate_limit = 100
    limited = proj.run("build", "--push", env=env_for(creds))
    server.rate_limit = 0
    assert limited.code == 1
    assert f"registry {reg.host}: rate limited (429 Too Many Requests) 4 times" in limited.err

    server.rate_limit = 2  # two 429s, then a token: retried with backoff, then the build goes on
    ok = proj.run("--output", "json", "build", "--push", env=env_for(creds))
    assert ok.code == 0, ok.err
    assert server.rate_limit == 0 and "build_done" in kinds(ok.out)


def test_missing_ca_is_a_tls_error_without_http_fallback(
    private_registries: dict[str, Any], i19: I19
) -> None:
    reg, certs = private_registries["tls"], private_registries["tls_certs"]
    proj = i19.project(reg.host)
    saved = certs.with_name(certs.name + ".i19-away")
    shutil.move(certs, saved)
    try:
        result = proj.run("--output", "json", "run", "--push", env=env_for(None))
    finally:
        shutil.move(saved, certs)
    assert result.code == 1
    assert f"TLS verification failed for {reg.host}: CERTIFICATE_VERIFY_FAILED" in result.err
    assert f"/etc/docker/certs.d/{reg.host}/ca.crt" in result.err
    assert "build_started" not in kinds(result.out)


@pytest.mark.parametrize("command", ["build", "run"])
def test_plain_http_impostor_on_a_non_loopback_address_is_refused(
    command: str, impostor: Impostor, i19: I19, tmp_path: Path
) -> None:
    """Issue 13 item 8: a fake plain-HTTP answer made `build --push` skip the build and the
    report pin the fake digest; now the TLS failure is the answer, and no HTTP request is sent."""
    proj = i19.project(impostor.host)
    report = tmp_path / "report.json"
    args = ["build", "--push", "--report", str(report)] if command == "build" else ["run"]
    result = proj.run("--output", "json", *args, env=env_for(None))
    assert result.code == 1
    assert f"TLS verification failed for {impostor.host}" in result.err
    assert "build_skipped" not in kinds(result.out) and not report.exists()
    assert impostor.requests == []


def test_insecure_listed_registry_may_answer_plain_http(impostor: Impostor, i19: I19) -> None:
    """`registry_insecure:` is the user's opt-in, like the daemon's insecure-registries."""
    proj = i19.project(impostor.host, extra=f"registry_insecure: ['{impostor.host}']\n")
    result = proj.run("--output", "json", "build", "--push", env=env_for(None))
    assert result.code == 0, result.err
    assert f"already in registry {impostor.host}" in result.out
    assert impostor.requests and impostor.requests[0].startswith("HEAD /v2/")


def test_build_report_pins_the_digest_the_registry_holds(
    private_registries: dict[str, Any], i19: I19, tmp_path: Path
) -> None:
    reg = private_registries["token"]
    proj = i19.project(reg.host)
    creds = docker_config(tmp_path, reg.host, USER, PASSWORD)
    report = tmp_path / "report.json"
    for _ in range(2):  # pushed, then found in the registry: both pin what it holds
        built = proj.run("build", "--push", "--report", str(report), env=env_for(creds))
        assert built.code == 0, built.err
        app = json.loads(report.read_text())["services"]["app"]
        repo, tag = app["image"].removeprefix(f"{reg.host}/").rsplit(":", 1)
        held = reg.digest(repo, tag)
        assert held and app["digest"] == held
        pinned = proj.run("render", "--build-report", str(report), env=env_for(creds))
        assert pinned.code == 0, pinned.err
        assert f"image: {app['image']}@{held}\n" in pinned.out


def test_doctor_checks_tls_and_login_and_names_the_source(
    private_registries: dict[str, Any], i19: I19, tmp_path: Path
) -> None:
    tls, token = private_registries["tls"], private_registries["token"]
    ok = i19.project(tls.host).run("--output", "json", "doctor", env=env_for(None))
    checks = {c["name"]: c for c in events(ok.out)}
    assert checks["registry"]["status"] == "ok"
    assert checks["registry"]["detail"] == (
        f"https://{tls.host}/v2/ answers; TLS: certificate verified "
        f"(system store + /etc/docker/certs.d/{tls.host}/ca.crt)"
    )

    creds = docker_config(tmp_path, token.host, USER, PASSWORD)
    proj = i19.project(token.host)
    good = proj.run("--output", "json", "doctor", env=env_for(creds))
    checks = {c["name"]: c for c in events(good.out)}
    login = {k: v for k, v in checks["registry login"].items() if k not in ("v", "event", "ts")}
    assert login == {
        "name": "registry login",
        "status": "ok",
        "detail": f"credentials from auths in {creds}/config.json: accepted",
        "fix": "",
    }
    wrong = docker_config(tmp_path, token.host, USER, "nope")
    bad = proj.run("--output", "json", "doctor", env=env_for(wrong))
    checks = {c["name"]: c for c in events(bad.out)}
    assert bad.code == 1 and checks["registry"]["status"] == "fail"
    assert f"run `docker login {token.host}`" in checks["registry"]["detail"]


def test_credential_helper_is_used_for_the_check_and_the_push(
    private_registries: dict[str, Any], i19: I19, tmp_path: Path
) -> None:
    """`credHelpers` runs `docker-credential-NAME get` (through docker.auth), as the CLI does."""
    reg = private_registries["basic"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-i19test"
    helper.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get ] || exit 1\nread server\necho "$server" >> {tmp_path}/asked\n'
        f'echo \'{{"ServerURL": "\'$server\'", "Username": "{USER}", "Secret": "{PASSWORD}"}}\'\n'
    )
    helper.chmod(0o755)
    config_dir = tmp_path / "helper-config"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"credHelpers": {reg.host: "i19test"}}))
    env = {**env_for(config_dir), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proj = i19.project(reg.host)
    built = proj.run("--output", "json", "build", "--push", env=env)
    assert built.code == 0, built.err
    assert "build_done" in kinds(built.out)
    # asked by the check and the push (and by the classic build: the SDK sends every login
    # with it; a BuildKit build through the CLI asks only for what it pulls)
    asked = (tmp_path / "asked").read_text().split()
    assert set(asked) == {reg.host} and len(asked) >= 2, asked
    doctor = proj.run("--output", "json", "doctor", env=env)
    checks = {c["name"]: c for c in events(doctor.out)}
    assert checks["registry login"]["detail"] == (
        f"credentials from docker-credential-i19test (credHelpers in {config_dir}/config.json):"
        " accepted"
    )


def test_identity_token_login_gets_a_token_by_oauth_refresh(
    private_registries: dict[str, Any], i19: I19, tmp_path: Path
) -> None:
    """An `identitytoken` (what `docker login` stores for ACR, GCR and other OAuth registries)
    is exchanged at the realm with a refresh-token POST, by devloop and by the daemon's push."""
    reg, server = private_registries["token"], private_registries["token_server"]
    folder = tmp_path / "oauth-config"
    folder.mkdir()
    auth = {"auth": base64.b64encode(b"<token>:").decode(), "identitytoken": "i19-refresh-token"}
    (folder / "config.json").write_text(json.dumps({"auths": {reg.host: auth}}))
    proj = i19.project(reg.host)
    before = len(server.requests)
    built = proj.run("--output", "json", "build", "--push", env=env_for(folder))
    assert built.code == 0, built.err
    assert "build_done" in kinds(built.out)
    assert {r["user"] for r in server.requests[before:]} == {USER}
